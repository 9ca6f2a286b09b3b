"""Sending hours: the days of the week and the local time range in which messages may go out.

A spec reads ``mon-sat 09:00-20:00`` (days as a range or a list, ``mon,wed,fri``; the time range
in the zone's wall time, start included, end excluded), or ``always``. A send that comes due
outside its hours waits for the next opening, found on the local calendar so that a change of
daylight-saving time moves the opening with the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.errors import InvalidInput

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Hours that never close.
ALWAYS = "always"
# Longest spec a column holds.
MAX_SPEC_LENGTH = 100


@dataclass(frozen=True)
class SendingHours:
    """Open on `days` (0 is Monday) from `start` to `end` (local wall time); `always` when
    days is all seven and the range is the whole day."""

    days: frozenset[int]
    start: time
    end: time | None  # None: until midnight

    @property
    def always(self) -> bool:
        return len(self.days) == 7 and self.start == time(0) and self.end is None

    def is_open(self, when: datetime, zone: ZoneInfo) -> bool:
        local = when.astimezone(zone)
        if local.weekday() not in self.days:
            return False
        wall = local.time().replace(tzinfo=None)
        return self.start <= wall and (self.end is None or wall < self.end)

    def next_opening(self, when: datetime, zone: ZoneInfo) -> datetime:
        """`when` itself if the hours are open then, else the next time they open (UTC)."""
        if self.is_open(when, zone):
            return when
        local_day = when.astimezone(zone).date()
        for offset in range(8):
            day = local_day + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opening = _local(day, self.start, zone)
            if opening > when:
                return opening
        raise AssertionError("sending hours with an open day always open within a week")


def _local(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time. A time that a spring change skips is read with the
    offset before the change (zoneinfo's fold=0), which lands just after the gap, still open."""
    return datetime.combine(day, wall).replace(tzinfo=zone).astimezone(UTC)


def _parse_time(text: str, spec: str) -> time:
    try:
        hours, minutes = text.split(":")
        if len(minutes) != 2 or not hours.isdigit() or not minutes.isdigit():
            raise ValueError
        if int(hours) == 24 and int(minutes) == 0:
            return time(0)
        return time(int(hours), int(minutes))
    except ValueError:
        raise InvalidInput(
            f"sending hours {spec!r}: expected a time like 09:00, got {text!r}"
        ) from None


def _parse_days(text: str, spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            a = DAY_NAMES.index(first.strip()[:3].lower())
            b = DAY_NAMES.index(last.strip()[:3].lower()) if last else a
        except ValueError:
            raise InvalidInput(
                f"sending hours {spec!r}: days are {', '.join(DAY_NAMES)} (a range like mon-sat)"
            ) from None
        if b < a:
            raise InvalidInput(f"sending hours {spec!r}: day range {part!r} runs backwards")
        days.update(range(a, b + 1))
    return frozenset(days)


def parse_hours(spec: str) -> SendingHours:
    """A spec as the settings, accounts and campaigns write it; InvalidInput when it is not one."""
    text = " ".join(spec.split())
    if len(text) > MAX_SPEC_LENGTH:
        raise InvalidInput(f"sending hours are at most {MAX_SPEC_LENGTH} characters")
    if text.lower() == ALWAYS:
        return SendingHours(frozenset(range(7)), time(0), None)
    days_text, _, range_text = text.partition(" ")
    if not range_text:
        raise InvalidInput(
            f"sending hours {spec!r}: expected days and a time range, like mon-sat 09:00-20:00"
        )
    start_text, _, end_text = range_text.partition("-")
    start = _parse_time(start_text.strip(), spec)
    end = _parse_time(end_text.strip(), spec)
    if end != time(0) and end <= start:
        raise InvalidInput(f"sending hours {spec!r}: the range must end after it starts")
    return SendingHours(_parse_days(days_text, spec), start, None if end == time(0) else end)


def check_hours(spec: str | None) -> str | None:
    """A spec as stored: normalised, or None for none."""
    if spec is None or not spec.strip():
        return None
    parse_hours(spec)
    return " ".join(spec.split()).lower()
