"""The scheduler's loop: sleep until the next fire, take its lock, run its job, remember it.

Time comes from :mod:`storage.clock`, so a fake clock drives the same code in tests and in the
demo (:meth:`Scheduler.run_until`). A fire missed while no scheduler ran is caught up once on
start if it is within its schedule's catch-up window; older ones are not. When several fires
of one schedule are overdue (the machine slept), only the latest one runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from producers.scheduler.firing import (
    Fire,
    FireLocks,
    LocalFireLocks,
    RedisFireLocks,
    latest_fire,
    lock_ttl,
    next_fire,
    owner_id,
)
from producers.scheduler.records import DatabaseRecords, FireRecords
from producers.scheduler.schedules import Job, Schedule, load_schedules, resolve
from storage import clock
from storage.settings import Settings, get_settings
from worker.logging import get_logger

log = get_logger("outreach.scheduler")

# A fire that comes due while the loop is busy with another still runs this late, whatever
# its catch-up window.
LATE_TOLERANCE = timedelta(minutes=1)
# The loop looks at the clock at least this often (a fake or file clock may jump).
MAX_SLEEP_SECONDS = 1.0
# While the lock store (Redis) is away, the loop asks again after this long, doubling each time
# up to the cap: well inside LATE_TOLERANCE, without hammering a server that is restarting.
LOCK_RETRY_FIRST_SECONDS = 0.25
LOCK_RETRY_MAX_SECONDS = 5.0


class SettableClock(Protocol):
    def now(self) -> datetime: ...

    def set(self, when: datetime) -> None: ...


class LockUnavailable(Exception):
    """The lock store (Redis) could not be asked: the fire waits for the next turn."""


@dataclass(frozen=True)
class FireOutcome:
    fire: Fire
    result: dict[str, Any] | None
    error: str | None
    catch_up: bool


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class Scheduler:
    """Fires each schedule's fires once, whoever else runs a scheduler on the same Redis."""

    def __init__(
        self,
        schedules: Iterable[Schedule],
        locks: FireLocks,
        *,
        jobs: Mapping[str, Job] | None = None,
        after_fire: Callable[[], None] | None = None,
        owner: str | None = None,
        records: FireRecords | None = None,
    ) -> None:
        self.schedules = list(schedules)
        self.locks = locks
        self.records = records or DatabaseRecords()
        # Jobs by schedule name, instead of importing the schedule's dotted path (tests, demo).
        self.jobs = dict(jobs or {})
        # Embedded mode: do the enqueued work in this process after each fire.
        self.after_fire = after_fire
        self.owner = owner or getattr(locks, "owner", None) or owner_id()
        self.stop_requested = threading.Event()
        # Per schedule: the last fire handled (fired, taken by another scheduler, or skipped)
        # and the next one after it.
        self._cursor: dict[str, datetime] = {}
        self._next: dict[str, Fire] = {}
        self._started_at: datetime | None = None
        # Turns in a row on which the lock store could not be asked (0 when it answers).
        self.lock_failures = 0

    # --- the loop ------------------------------------------------------------------------------

    def start(self, now: datetime | None = None) -> None:
        """Where each schedule resumes: its last recorded fire, or the start of its catch-up
        window, whichever is later."""
        now = now or clock.now()
        recorded = self.records.last_fire_times()
        for schedule in self.schedules:
            cursor = now - schedule.catch_up
            last = recorded.get(schedule.name)
            if last is not None and last > cursor:
                # Capped at now: a record from a clock that ran ahead never silences a schedule.
                cursor = min(last, now)
            self._move_cursor(schedule, cursor)
        self._started_at = now
        log.info(
            "scheduler.started",
            owner=self.owner,
            schedules=[
                {**s.describe(), "next_fire_time": self._next[s.name].at.isoformat()}
                for s in self.schedules
            ],
        )

    def run_due(self, now: datetime | None = None) -> list[FireOutcome]:
        """Fire every schedule whose latest fire time has come and was not handled yet."""
        now = now or clock.now()
        if self._started_at is None:
            self.start(now)
        due: list[tuple[Fire, Schedule, datetime]] = []
        for schedule in self.schedules:
            if self._next[schedule.name].at > now:
                continue
            # Due: the latest fire up to now (several overdue ones collapse into it).
            fire = latest_fire(schedule, now)
            previous = self._cursor[schedule.name]
            if fire is None or fire.at <= previous:
                continue
            self._move_cursor(schedule, fire.at)
            if fire.at < now - max(schedule.catch_up, LATE_TOLERANCE):
                log.warning(
                    "scheduler.fire_missed",
                    schedule=schedule.name,
                    fire_time=fire.at.isoformat(),
                    late_seconds=int((now - fire.at).total_seconds()),
                )
                continue
            due.append((fire, schedule, previous))
        outcomes = []
        due.sort(key=lambda item: item[0])
        for index, (fire, schedule, _) in enumerate(due):
            if self.stop_requested.is_set():
                break  # the fires not started are caught up by the next start
            try:
                outcome = self._fire(schedule, fire)
            except LockUnavailable:
                # Redis is away: these fires are tried again on the next turn of the loop
                # (as long as they are not too late), never fired without their lock.
                for _, waiting, previous in due[index:]:
                    self._move_cursor(waiting, previous)
                self.lock_failures += 1
                break
            if self.lock_failures:
                log.info("scheduler.lock_recovered", after_failures=self.lock_failures)
                self.lock_failures = 0
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def next_wake(self) -> datetime:
        return min(fire.at for fire in self._next.values())

    def _move_cursor(self, schedule: Schedule, cursor: datetime) -> None:
        self._cursor[schedule.name] = cursor
        self._next[schedule.name] = next_fire(schedule, cursor)

    def run_forever(self) -> None:
        """Until :meth:`stop`: the current fire finishes, the rest wait for the next start."""
        self.start()
        while not self.stop_requested.is_set():
            try:
                self.run_due(clock.now())
            except Exception as exc:
                # Whatever happens to one turn (a database or Redis outage), the process stays
                # up and tries again: a scheduler that exits stops every sweep.
                log.error("scheduler.turn_failed", error=_first_line(exc), exc_info=True)
                self.stop_requested.wait(MAX_SLEEP_SECONDS)
                continue
            if self.lock_failures:
                # The due fire is still due: without a pause the loop would spin on it.
                self.stop_requested.wait(self.lock_retry_delay())
                continue
            wait = (self.next_wake() - clock.now()).total_seconds()
            if wait > 0:
                self.stop_requested.wait(min(wait, MAX_SLEEP_SECONDS))
        log.info("scheduler.stopped", owner=self.owner)

    def lock_retry_delay(self) -> float:
        """Seconds before asking the lock store again: doubling from the first, capped."""
        exponent = min(max(self.lock_failures - 1, 0), 16)
        return float(min(LOCK_RETRY_MAX_SECONDS, LOCK_RETRY_FIRST_SECONDS * 2**exponent))

    def stop(self) -> None:
        self.stop_requested.set()

    def run_until(self, until: datetime, fake_clock: SettableClock) -> list[FireOutcome]:
        """Move a fake clock from fire to fire up to `until`, firing as the loop would."""
        if self._started_at is None:
            self.start(fake_clock.now())
        outcomes = self.run_due(fake_clock.now())
        while (wake := self.next_wake()) <= until:
            fake_clock.set(wake)
            outcomes += self.run_due(wake)
        fake_clock.set(until)
        return outcomes

    # --- one fire ------------------------------------------------------------------------------

    def _fire(self, schedule: Schedule, fire: Fire) -> FireOutcome | None:
        try:
            acquired = self.locks.acquire(fire, lock_ttl(schedule, LATE_TOLERANCE))
        except Exception as exc:
            log.error(
                "scheduler.lock_unavailable",
                schedule=schedule.name,
                fire_time=fire.at.isoformat(),
                error=_first_line(exc),
            )
            raise LockUnavailable from exc
        if not acquired:
            log.debug("scheduler.fire_taken", schedule=schedule.name, fire_time=fire.at.isoformat())
            return None
        catch_up = self._started_at is not None and fire.at < self._started_at
        started_at = clock.now()
        result: dict[str, Any] | None = None
        error: str | None = None
        try:
            job = self.jobs.get(schedule.name) or resolve(schedule.job)
            returned = job(fire.at)
            result = returned if isinstance(returned, dict) else {"result": returned}
            if self.after_fire is not None:
                self.after_fire()
        except Exception as exc:
            # One failing sweep never stops the others; the next fire tries again.
            error = _first_line(exc)
            log.error(
                "scheduler.fire_failed",
                schedule=schedule.name,
                fire_time=fire.at.isoformat(),
                wall_time=fire.wall.isoformat(),
                error=error,
                exc_info=True,
            )
        except BaseException:
            # Interrupted mid-fire (a second SIGTERM): hand the fire back, so that the next
            # start catches it up (the sweeps are idempotent, a half-done fire is safe to redo).
            self.locks.release(fire)
            log.warning(
                "scheduler.fire_abandoned", schedule=schedule.name, fire_time=fire.at.isoformat()
            )
            raise
        try:
            self.records.record(
                schedule,
                fire,
                started_at=started_at,
                finished_at=clock.now(),
                result=result,
                error=error,
                fired_by=self.owner,
            )
        except Exception as exc:
            log.error("scheduler.record_failed", schedule=schedule.name, error=_first_line(exc))
        if error is None:
            log.info(
                "scheduler.fire",
                schedule=schedule.name,
                fire_time=fire.at.isoformat(),
                wall_time=fire.wall.isoformat(),
                timezone=schedule.timezone,
                catch_up=catch_up,
                enqueued=result,
            )
        return FireOutcome(fire, result, error, catch_up)


def drain_embedded() -> None:
    """Embedded mode: run what the fire enqueued in this process (nothing to do otherwise)."""
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    from producers.embedded import drain

    broker = dramatiq.get_broker()
    if isinstance(broker, StubBroker) and any(
        queue.unfinished_tasks for queue in broker.queues.values()
    ):
        drain(broker)


def build_scheduler(
    settings: Settings | None = None,
    schedules: Iterable[Schedule] | None = None,
    jobs: Mapping[str, Job] | None = None,
) -> Scheduler:
    """The scheduler on the configured broker: its Redis for the locks, or in-process locks and
    in-process work in embedded mode. Call after the broker is set up (``worker.actors``)."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    settings = settings or get_settings()
    schedules = list(schedules) if schedules is not None else load_schedules(settings)
    broker = dramatiq.get_broker()
    locks: FireLocks
    if isinstance(broker, RedisBroker):
        locks = RedisFireLocks(broker.client, broker.namespace)
        return Scheduler(schedules, locks, jobs=jobs)
    locks = LocalFireLocks()
    return Scheduler(schedules, locks, jobs=jobs, after_fire=drain_embedded)
