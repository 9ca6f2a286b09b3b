"""Sending hours: parsed once, read in the account's zone, openings found on its calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from storage.errors import InvalidInput
from worker.hours import parse_hours

PARIS = ZoneInfo("Europe/Paris")
DEFAULT = parse_hours("mon-sat 09:00-20:00")


def test_a_send_due_at_three_in_the_morning_waits_for_nine():
    # Given a Tuesday 03:00 in Paris (winter: UTC+1)
    due = datetime(2026, 1, 6, 2, 0, tzinfo=UTC)
    # Then the next opening is the same day at 09:00 Paris
    assert DEFAULT.next_opening(due, PARIS) == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)


def test_saturday_evening_waits_for_monday_morning():
    saturday_evening = datetime(2026, 1, 10, 19, 30, tzinfo=UTC)  # 20:30 in Paris
    assert DEFAULT.next_opening(saturday_evening, PARIS) == datetime(2026, 1, 12, 8, 0, tzinfo=UTC)


def test_inside_the_hours_a_send_goes_at_once():
    inside = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)
    assert DEFAULT.next_opening(inside, PARIS) == inside


def test_the_opening_follows_the_wall_clock_across_the_spring_change():
    # Given Saturday 28 March 2026 after closing; Paris moves to UTC+2 on Sunday the 29th
    after_closing = datetime(2026, 3, 28, 19, 30, tzinfo=UTC)
    # Then Monday's opening is 09:00 summer time, 07:00 UTC (not 08:00 as in winter)
    assert DEFAULT.next_opening(after_closing, PARIS) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


def test_the_opening_follows_the_wall_clock_across_the_autumn_change():
    # Paris goes back to UTC+1 on Sunday 25 October 2026
    after_closing = datetime(2026, 10, 24, 18, 30, tzinfo=UTC)  # 20:30 summer time
    assert DEFAULT.next_opening(after_closing, PARIS) == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


def test_over_a_simulated_week_with_a_dst_change_nothing_is_open_outside_the_hours():
    # Every minute of the week around the spring change, read on the Paris wall clock
    start = datetime(2026, 3, 25, 0, 0, tzinfo=UTC)
    for minute in range(8 * 24 * 60):
        when = start + timedelta(minutes=minute)
        local = when.astimezone(PARIS)
        expected = local.weekday() < 6 and 9 <= local.hour < 20
        assert DEFAULT.is_open(when, PARIS) is expected, local
        opening = DEFAULT.next_opening(when, PARIS)
        assert DEFAULT.is_open(opening, PARIS)
        # Nothing opens between `when` and the opening found
        assert opening == when or not DEFAULT.is_open(opening - timedelta(minutes=1), PARIS)


@pytest.mark.parametrize(
    ("spec", "days", "start", "end"),
    [
        ("mon-fri 08:30-18:00", {0, 1, 2, 3, 4}, "08:30", "18:00"),
        ("MON,wed,Fri 10:00-24:00", {0, 2, 4}, "10:00", None),
        ("always", set(range(7)), "00:00", None),
    ],
)
def test_specs_read_as_written(spec, days, start, end):
    hours = parse_hours(spec)
    assert hours.days == frozenset(days)
    assert hours.start.strftime("%H:%M") == start
    assert (hours.end.strftime("%H:%M") if hours.end else None) == end


@pytest.mark.parametrize(
    "spec", ["", "mon-sat", "sun-mon 09:00-10:00", "mon 10:00-09:00", "xyz 09:00-10:00", "mon 9-10"]
)
def test_a_bad_spec_is_refused(spec):
    with pytest.raises(InvalidInput):
        parse_hours(spec)
