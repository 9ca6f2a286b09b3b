"""Fire times in each schedule's own time zone, and the lock that lets a fire happen once.

Cron expressions are read on the local wall clock (croniter on naive local times), then each
wall time is turned into an instant:

- a wall time that happens twice (the autumn change) fires once, at its first occurrence;
- a wall time that never happens (the spring change) fires when the gap ends, for a schedule
  with a fixed minute and hour ("30 2 * * *" runs at 03:00 that day), and is skipped for a
  schedule that runs every minute or every hour anyway (as Vixie cron does).

The lock key is the schedule's name and the fire's local wall time, so even a scheduler that
reads the repeated hour twice cannot fire it twice: ``SET key owner NX EX ttl`` on Redis.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import redis
from croniter import croniter

from producers.scheduler.schedules import Schedule
from storage import clock

# Candidate wall times looked at before giving up (an impossible date such as 30 February
# fails long before; the repeated autumn hour of a per-second schedule needs 3,600).
MAX_CANDIDATES = 20_000
# A lock outlives the fire's catch-up window by this much, which covers a repeated hour and
# clocks that differ between machines.
LOCK_MARGIN = timedelta(hours=1)


@dataclass(frozen=True, order=True)
class Fire:
    at: datetime  # the instant, aware UTC
    schedule: str
    wall: datetime  # the same instant on the schedule's local wall clock (naive)

    @property
    def key(self) -> str:
        """What the lock is keyed by: the name and the local wall time, not the instant."""
        return f"{self.schedule}:{self.wall.isoformat()}"


_parsed = threading.local()


def _candidates(cron: str, start: datetime) -> croniter:
    """A croniter at `start`; parsed once per expression and thread (parsing is the slow part)."""
    cache: dict[str, croniter] = _parsed.__dict__.setdefault("cache", {})
    iterator = cache.get(cron)
    if iterator is None:
        iterator = cache[cron] = croniter(cron, start)
    else:
        iterator.set_current(start, force=True)
    return iterator


def is_wildcard(schedule: Schedule) -> bool:
    """Runs every minute or every hour (minute or hour field starred)."""
    minute, hour = schedule.cron.split()[:2]
    return minute.startswith("*") or hour.startswith("*")


def local_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a spring-forward gap containing `wall` ends (the clocks' jump)."""
    # fold=1 reads the wall time with the offset after the jump (an instant before it),
    # fold=0 with the offset before (an instant after it): the jump lies in between.
    before = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    after = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    new_offset = datetime.fromtimestamp(after, zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == new_offset:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def instant_of(wall: datetime, zone: ZoneInfo, wildcard: bool) -> datetime | None:
    """When a local wall time fires: its first occurrence, the end of a gap, or never."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if local_wall(first, zone) == wall:
        return first
    # The wall time falls in a spring-forward gap.
    return None if wildcard else _gap_end(wall, zone)


def next_fire(schedule: Schedule, after: datetime) -> Fire:
    """The first fire strictly after `after`."""
    after = clock.as_utc(after)
    zone, wildcard = schedule.zone, is_wildcard(schedule)
    candidates = _candidates(schedule.cron, local_wall(after, zone))
    for _ in range(MAX_CANDIDATES):
        wall = candidates.get_next(datetime)
        at = instant_of(wall, zone, wildcard)
        # A wall time of the repeated hour read after its first occurrence is already past.
        if at is not None and at > after:
            return Fire(at, schedule.name, wall)
    raise RuntimeError(f"schedule {schedule.name!r}: no fire time found after {after}")


def latest_fire(schedule: Schedule, at_or_before: datetime) -> Fire | None:
    """The last fire at or before `at_or_before` (None if there is none in reach)."""
    moment = clock.as_utc(at_or_before)
    zone, wildcard = schedule.zone, is_wildcard(schedule)
    # In the second pass of a repeated hour, wall times up to the end of that hour already
    # fired during the first pass: start from the wall time read with the earlier offset.
    local = moment.astimezone(zone)
    start = local_wall(moment, zone)
    if local.fold:
        first_offset = local.replace(fold=0).utcoffset()
        assert first_offset is not None
        start = (moment + first_offset).replace(tzinfo=None)
    # croniter's get_prev is strictly before its start: nudge the start to include it.
    candidates = _candidates(schedule.cron, start + timedelta(microseconds=1))
    for _ in range(MAX_CANDIDATES):
        try:
            wall = candidates.get_prev(datetime)
        except Exception:  # croniter gives up on dates too far back
            return None
        at = instant_of(wall, zone, wildcard)
        if at is not None and at <= moment:
            return Fire(at, schedule.name, wall)
    return None


def fires_between(schedule: Schedule, start: datetime, end: datetime) -> list[Fire]:
    """Every fire with start < at <= end, in order."""
    fires = []
    fire = next_fire(schedule, start)
    while fire.at <= end:
        fires.append(fire)
        fire = next_fire(schedule, fire.at)
    return fires


def lock_ttl(schedule: Schedule, late_tolerance: timedelta) -> timedelta:
    return max(schedule.catch_up, late_tolerance) + LOCK_MARGIN


class FireLocks(Protocol):
    def acquire(self, fire: Fire, ttl: timedelta) -> bool: ...

    def release(self, fire: Fire) -> None: ...


def owner_id() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# Delete the lock only if this scheduler still holds it.
_RELEASE_SCRIPT = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""


class RedisFireLocks:
    """One fire, one winner, across every scheduler that shares the Redis (SET NX EX)."""

    def __init__(self, client: redis.Redis, namespace: str, owner: str | None = None) -> None:
        self.client = client
        self.prefix = f"{namespace}:__scheduler__:"
        self.owner = owner or owner_id()

    def key(self, fire: Fire) -> str:
        return self.prefix + fire.key

    def acquire(self, fire: Fire, ttl: timedelta) -> bool:
        seconds = max(1, int(ttl.total_seconds()))
        return bool(self.client.set(self.key(fire), self.owner, nx=True, ex=seconds))

    def release(self, fire: Fire) -> None:
        self.client.eval(_RELEASE_SCRIPT, 1, self.key(fire), self.owner)


class LocalFireLocks:
    """Embedded mode (no Redis): the same rule within one process, expiring on the clock."""

    def __init__(self) -> None:
        self._held: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def acquire(self, fire: Fire, ttl: timedelta) -> bool:
        now = clock.now()
        with self._lock:
            for key in [k for k, until in self._held.items() if until <= now]:
                del self._held[key]
            if fire.key in self._held:
                return False
            self._held[fire.key] = now + ttl
            return True

    def release(self, fire: Fire) -> None:
        with self._lock:
            self._held.pop(fire.key, None)
