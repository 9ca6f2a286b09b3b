"""The scheduler's memory: the last fire of each schedule, so a restart knows what it missed."""

from __future__ import annotations

from peewee import CharField, TextField

from storage.models.base import BaseModel, UTCDateTimeField


class ScheduleLastFire(BaseModel):
    """One row per schedule, moved forward only (an older fire never overwrites a newer one)."""

    schedule = CharField(max_length=100, primary_key=True)
    # The fire's instant, and the same instant on the schedule's local wall clock.
    fire_time = UTCDateTimeField()
    wall_time = CharField(max_length=32)
    timezone = CharField(max_length=64)
    started_at = UTCDateTimeField()
    finished_at = UTCDateTimeField()
    # JSON of what the fire enqueued (the job's own summary), or the error that stopped it.
    result = TextField(null=True)
    error = TextField(null=True)
    # host:pid of the scheduler that fired it.
    fired_by = CharField(max_length=200)

    class Meta:
        table_name = "schedule_last_fire"
