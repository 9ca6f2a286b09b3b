"""Fire times in each schedule's own zone, across both daylight-saving changes of 2026.

Europe/Paris moves from +01:00 to +02:00 at 01:00 UTC on 29 March (02:00 local does not exist)
and back at 01:00 UTC on 25 October (02:00-03:00 local happens twice).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import fakeredis

from producers.scheduler.firing import (
    Fire,
    LocalFireLocks,
    RedisFireLocks,
    fires_between,
    latest_fire,
    next_fire,
)
from producers.scheduler.schedules import Schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def paris(cron: str) -> Schedule:
    return Schedule("paris", cron, "tests.jobs.none", "Europe/Paris")


def instants(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    return [f.at for f in fires_between(schedule, start, end)]


def test_a_fixed_local_time_moves_in_utc_with_daylight_saving():
    # Given hunts at 08:00 Paris time
    hunts = paris("0 8 * * *")
    # Then they fire at 07:00 UTC in winter and 06:00 UTC in summer, on the change days too
    assert instants(hunts, utc(2026, 3, 27), utc(2026, 3, 31)) == [
        utc(2026, 3, 27, 7),
        utc(2026, 3, 28, 7),
        utc(2026, 3, 29, 6),
        utc(2026, 3, 30, 6),
    ]
    assert instants(hunts, utc(2026, 10, 23), utc(2026, 10, 27)) == [
        utc(2026, 10, 23, 6),
        utc(2026, 10, 24, 6),
        utc(2026, 10, 25, 7),
        utc(2026, 10, 26, 7),
    ]


def test_a_local_time_skipped_in_spring_fires_when_the_clocks_jump():
    # Given a daily fire at 02:30 Paris, a wall time that 29 March does not have
    daily = paris("30 2 * * *")
    # Then that day it fires once, at 03:00 local (01:00 UTC), the end of the gap
    assert instants(daily, utc(2026, 3, 27, 12), utc(2026, 3, 30, 12)) == [
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 30, 0, 30),
    ]


def test_a_local_time_repeated_in_autumn_fires_once_at_its_first_occurrence():
    daily = paris("30 2 * * *")
    fires = fires_between(daily, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))
    # 02:30 CEST (00:30 UTC) fires; 02:30 CET an hour later does not; then 01:30 UTC
    assert [f.at for f in fires] == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert fires[0].wall == datetime(2026, 10, 25, 2, 30)


def test_an_hourly_schedule_skips_the_missing_hour_and_runs_the_repeated_one_once():
    hourly = paris("0 * * * *")
    spring = instants(hourly, utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 3, 30))
    # 01:00 CET, [02:00 does not exist], 03:00, 04:00, 05:00 CEST
    assert spring == [utc(2026, 3, 29, h) for h in (0, 1, 2, 3)]
    autumn = fires_between(hourly, utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 3, 30))
    # 01:00, 02:00 CEST, [02:00 CET again: no], 03:00, 04:00 CET
    assert [f.at for f in autumn] == [
        utc(2026, 10, 24, 23),
        *(utc(2026, 10, 25, h) for h in (0, 2, 3)),
    ]
    assert [f.wall.hour for f in autumn] == [1, 2, 3, 4]


def test_utc_schedules_ignore_local_daylight_saving():
    engagement = Schedule("engagement", "0 6 * * *", "tests.jobs.none", "UTC")
    assert instants(engagement, utc(2026, 3, 28), utc(2026, 3, 30)) == [
        utc(2026, 3, 28, 6),
        utc(2026, 3, 29, 6),
    ]
    every_five = Schedule("campaigns", "*/5 * * * *", "tests.jobs.none")
    fires = instants(every_five, utc(2026, 10, 25, 0), utc(2026, 10, 25, 3))
    assert fires == [utc(2026, 10, 25, 0) + timedelta(minutes=5 * i) for i in range(1, 37)]


def test_seconds_as_a_sixth_field():
    every_second = Schedule("fast", "* * * * * *", "tests.jobs.none")
    assert instants(every_second, utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 3)) == [
        utc(2026, 1, 1, 0, 0, s) for s in (1, 2, 3)
    ]


def test_latest_fire_includes_the_instant_itself_and_knows_the_repeated_hour():
    hunts = paris("0 8 * * *")
    assert latest_fire(hunts, utc(2026, 3, 29, 6)).at == utc(2026, 3, 29, 6)
    assert latest_fire(hunts, utc(2026, 3, 29, 5, 59)).at == utc(2026, 3, 28, 7)
    hourly = paris("0 * * * *")
    # During the second 02:xx of 25 October, the latest fire is 02:00 CEST (00:00 UTC)
    assert latest_fire(hourly, utc(2026, 10, 25, 1, 30)).at == utc(2026, 10, 25, 0)
    # ...and just after it, 03:00 CET
    assert latest_fire(hourly, utc(2026, 10, 25, 2, 0)).at == utc(2026, 10, 25, 2)
    assert next_fire(hourly, utc(2026, 10, 25, 0)).at == utc(2026, 10, 25, 2)


def test_the_lock_is_keyed_by_local_wall_time_so_the_repeated_hour_fires_once():
    # Given two readings of 02:30 on 25 October: the first pass and the second, an hour later
    first = Fire(utc(2026, 10, 25, 0, 30), "hunts", datetime(2026, 10, 25, 2, 30))
    second = Fire(utc(2026, 10, 25, 1, 30), "hunts", datetime(2026, 10, 25, 2, 30))
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    a = RedisFireLocks(client, "ns", owner="a")
    b = RedisFireLocks(client, "ns", owner="b")
    # Then whoever locks first wins both
    assert a.acquire(first, timedelta(hours=7)) is True
    assert b.acquire(second, timedelta(hours=7)) is False
    assert a.acquire(first, timedelta(hours=7)) is False
    assert client.ttl("ns:__scheduler__:hunts:2026-10-25T02:30:00") > 6 * 3600
    # And another schedule's fire at the same time is its own
    other = Fire(first.at, "engagement", first.wall)
    assert b.acquire(other, timedelta(hours=1)) is True


def test_only_the_owner_releases_a_lock():
    fire = Fire(utc(2026, 1, 1, 6), "engagement", datetime(2026, 1, 1, 6))
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    a = RedisFireLocks(client, "ns", owner="a")
    b = RedisFireLocks(client, "ns", owner="b")
    assert a.acquire(fire, timedelta(hours=1))
    b.release(fire)
    assert not b.acquire(fire, timedelta(hours=1))
    a.release(fire)
    assert b.acquire(fire, timedelta(hours=1))


def test_in_process_locks_expire_on_the_injected_clock(clock):
    fire = Fire(utc(2026, 1, 1, 6), "engagement", datetime(2026, 1, 1, 6))
    locks = LocalFireLocks()
    assert locks.acquire(fire, timedelta(hours=1))
    assert not locks.acquire(fire, timedelta(hours=1))
    clock.advance(timedelta(hours=1, seconds=1))
    assert locks.acquire(fire, timedelta(hours=1))
