"""The last fire of each schedule, in the database: what a restart catches up from, and what
`outreach status` shows."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from peewee import EXCLUDED

from producers.scheduler.firing import Fire
from producers.scheduler.schedules import Schedule
from storage.db import database
from storage.models.scheduler import ScheduleLastFire

# Longest error text kept (the first line of the exception).
MAX_ERROR_LENGTH = 1000


def record_fire(
    schedule: Schedule,
    fire: Fire,
    *,
    started_at: datetime,
    finished_at: datetime,
    result: dict[str, Any] | None,
    error: str | None,
    fired_by: str,
) -> None:
    """Keep this fire as the schedule's last one, unless a later fire is already kept."""
    row = {
        ScheduleLastFire.schedule: schedule.name,
        ScheduleLastFire.fire_time: fire.at,
        ScheduleLastFire.wall_time: fire.wall.isoformat(),
        ScheduleLastFire.timezone: schedule.timezone,
        ScheduleLastFire.started_at: started_at,
        ScheduleLastFire.finished_at: finished_at,
        ScheduleLastFire.result: None
        if result is None
        else json.dumps(result, default=str, sort_keys=True),
        ScheduleLastFire.error: None if error is None else error[:MAX_ERROR_LENGTH],
        ScheduleLastFire.fired_by: fired_by,
    }
    with database.connection_context():
        ScheduleLastFire.insert(row).on_conflict(
            conflict_target=[ScheduleLastFire.schedule],
            preserve=[field for field in row if field is not ScheduleLastFire.schedule],
            # Two schedulers recording out of order: the later fire wins.
            where=(ScheduleLastFire.fire_time < EXCLUDED.fire_time),
        ).execute()


def last_fires() -> dict[str, ScheduleLastFire]:
    with database.connection_context():
        return {row.schedule: row for row in ScheduleLastFire.select()}


def describe(row: ScheduleLastFire | None) -> dict[str, Any]:
    if row is None:
        return {"last_fire_time": None, "last_wall_time": None, "last_result": None}
    return {
        "last_fire_time": row.fire_time.isoformat(),
        "last_wall_time": row.wall_time,
        "last_finished_at": row.finished_at.isoformat(),
        "last_result": json.loads(row.result) if row.result else None,
        "last_error": row.error,
        "last_fired_by": row.fired_by,
    }


class FireRecords(Protocol):
    """Where a scheduler keeps each schedule's last fire."""

    def last_fire_times(self) -> dict[str, datetime]: ...

    def record(self, schedule: Schedule, fire: Fire, **details: Any) -> None: ...


class DatabaseRecords:
    """The real store: the `schedule_last_fire` table, shared by every scheduler."""

    def last_fire_times(self) -> dict[str, datetime]:
        return {name: row.fire_time for name, row in last_fires().items()}

    def record(self, schedule: Schedule, fire: Fire, **details: Any) -> None:
        record_fire(schedule, fire, **details)


class MemoryRecords:
    """In memory, for simulations that fire thousands of times (the database adds nothing)."""

    def __init__(self) -> None:
        self.fires: dict[str, tuple[Fire, dict[str, Any]]] = {}

    def last_fire_times(self) -> dict[str, datetime]:
        return {name: fire.at for name, (fire, _) in self.fires.items()}

    def record(self, schedule: Schedule, fire: Fire, **details: Any) -> None:
        kept = self.fires.get(schedule.name)
        if kept is None or kept[0].at < fire.at:
            self.fires[schedule.name] = (fire, details)


def claim_fire(schedule: Schedule, fire: Fire, *, started_at: datetime, fired_by: str) -> bool:
    """Keep `fire` as the schedule's last one before running it, if no fire as late is kept:
    True for the one caller that may run it (the database decides, across processes)."""
    row = {
        ScheduleLastFire.schedule: schedule.name,
        ScheduleLastFire.fire_time: fire.at,
        ScheduleLastFire.wall_time: fire.wall.isoformat(),
        ScheduleLastFire.timezone: schedule.timezone,
        ScheduleLastFire.started_at: started_at,
        ScheduleLastFire.finished_at: started_at,
        ScheduleLastFire.result: None,
        ScheduleLastFire.error: None,
        ScheduleLastFire.fired_by: fired_by,
    }
    with database.connection_context():
        claimed = (
            ScheduleLastFire.insert(row)
            .on_conflict(
                conflict_target=[ScheduleLastFire.schedule],
                preserve=[field for field in row if field is not ScheduleLastFire.schedule],
                where=(ScheduleLastFire.fire_time < EXCLUDED.fire_time),
            )
            .as_rowcount()
            .execute()
        )
    return bool(claimed)


def finish_fire(
    schedule: Schedule,
    fire: Fire,
    *,
    finished_at: datetime,
    result: dict[str, Any] | None,
    error: str | None,
) -> None:
    """What a claimed fire did (unless a later fire was kept meanwhile)."""
    with database.connection_context():
        ScheduleLastFire.update(
            finished_at=finished_at,
            result=None if result is None else json.dumps(result, default=str, sort_keys=True),
            error=None if error is None else error[:MAX_ERROR_LENGTH],
        ).where(
            (ScheduleLastFire.schedule == schedule.name) & (ScheduleLastFire.fire_time == fire.at)
        ).execute()
