"""A schedule's fire on request (the seeds' cron routes): the same fire, once, whoever asks.

A request fires the schedule's latest fire time that has come (a daily hunt sweep's today at
08:00 local, the campaign tick's current five minutes), as the scheduler would: within the
schedule's catch-up window, and a no-op for a fire already made. Three guards, the first two
the scheduler's own: the fire's lock (Redis ``SET NX`` on the same key, so a request and the
scheduler exclude each other), the recorded last fire, and a claim of the fire in that record
before the job runs, which the database grants once even between processes without Redis
(embedded mode). The jobs are idempotent for a fire anyway: this keeps a second call from even
looking.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from producers.scheduler.firing import (
    FireLocks,
    LocalFireLocks,
    RedisFireLocks,
    latest_fire,
    lock_ttl,
    next_fire,
)
from producers.scheduler.loop import LATE_TOLERANCE
from producers.scheduler.records import claim_fire, finish_fire, last_fires
from producers.scheduler.schedules import Schedule, load_schedules, resolve
from storage import clock
from storage.errors import InvalidState, NotFound
from storage.settings import get_settings
from worker.logging import get_logger

log = get_logger("outreach.scheduler.triggers")

# Embedded mode: the requests of this process share one lock table.
_local_locks = LocalFireLocks()


def schedule_for(job: str) -> Schedule:
    """The configured schedule that runs `job` (a dotted path)."""
    for schedule in load_schedules(get_settings()):
        if schedule.job == job:
            return schedule
    raise NotFound(f"no schedule runs {job} (see OUTREACH_SCHEDULES)")


def _locks(owner: str) -> FireLocks:
    broker = dramatiq.get_broker()
    if isinstance(broker, RedisBroker):
        return RedisFireLocks(broker.client, broker.namespace, owner=owner)
    return _local_locks


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def fire_on_request(schedule: Schedule, fired_by: str) -> dict[str, Any]:
    """Fire the schedule's latest due fire unless it was fired; says which and what it did."""
    now = clock.now()
    fire = latest_fire(schedule, now)
    if fire is None:
        raise NotFound(f"schedule {schedule.name!r} has no fire time up to now")
    answer: dict[str, Any] = {
        "schedule": schedule.name,
        "fire_time": fire.at.isoformat(),
        "wall_time": fire.wall.isoformat(),
        "timezone": schedule.timezone,
    }
    kept = last_fires().get(schedule.name)
    if kept is not None and kept.fire_time >= fire.at:
        return {**answer, "fired": False, "reason": "already fired", "fired_by": kept.fired_by}
    if fire.at < now - max(schedule.catch_up, LATE_TOLERANCE):
        # Too old for the scheduler to catch up: a request does not either (a daily sweep asked
        # for before today's time would otherwise run yesterday's day).
        coming = next_fire(schedule, now)
        raise InvalidState(
            f"schedule {schedule.name!r} has no fire due: the last one ({fire.wall.isoformat()} "
            f"{schedule.timezone}) is past its catch-up window, the next is at "
            f"{coming.wall.isoformat()} {schedule.timezone}"
        )
    locks = _locks(fired_by)
    if not locks.acquire(fire, lock_ttl(schedule, LATE_TOLERANCE)):
        return {**answer, "fired": False, "reason": "being fired by another caller"}
    if not claim_fire(schedule, fire, started_at=now, fired_by=fired_by):
        return {**answer, "fired": False, "reason": "already fired"}
    result: dict[str, Any] | None = None
    error: str | None = None
    try:
        returned = resolve(schedule.job)(fire.at)
        result = returned if isinstance(returned, dict) else {"result": returned}
    except Exception as exc:
        error = _first_line(exc)
        log.error("trigger.fire_failed", schedule=schedule.name, error=error, exc_info=True)
    finish_fire(schedule, fire, finished_at=clock.now(), result=result, error=error)
    log.info(
        "trigger.fire",
        schedule=schedule.name,
        fire_time=fire.at.isoformat(),
        fired_by=fired_by,
        enqueued=result,
        error=error,
    )
    return {**answer, "fired": True, "result": result, "error": error}
