"""The last fire of each schedule, kept in the database on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

from producers.scheduler.firing import Fire
from producers.scheduler.records import describe, last_fires, record_fire
from producers.scheduler.schedules import Schedule

HUNTS = Schedule("hunts", "0 8 * * *", "producers.hunts.sweep", "Europe/Paris")


def fire(day: int) -> Fire:
    return Fire(datetime(2026, 3, day, 7, tzinfo=UTC), "hunts", datetime(2026, 3, day, 8))


def keep(day: int, by: str, error: str | None = None) -> None:
    at = fire(day).at
    record_fire(
        HUNTS,
        fire(day),
        started_at=at,
        finished_at=at,
        result=None if error else {"enqueued": day},
        error=error,
        fired_by=by,
    )


def test_the_latest_fire_is_kept_even_when_records_arrive_out_of_order(db):
    # Given a scheduler recording the 3rd, then a slower one recording the 2nd
    keep(3, by="a")
    keep(2, by="b")
    # Then the 3rd is kept
    row = last_fires()["hunts"]
    assert (row.fire_time, row.wall_time, row.fired_by) == (fire(3).at, "2026-03-03T08:00:00", "a")
    assert describe(row)["last_result"] == {"enqueued": 3}
    # And a later fire replaces it, its error with it
    keep(4, by="b", error="RuntimeError: boom")
    row = last_fires()["hunts"]
    assert (row.fire_time, row.error, row.result) == (fire(4).at, "RuntimeError: boom", None)
