"""The loop on a fake clock and fakeredis: fires on time, once, catches up within its window."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
import redis

from producers.scheduler.firing import LocalFireLocks
from producers.scheduler.loop import Scheduler, build_scheduler
from producers.scheduler.records import MemoryRecords, last_fires
from producers.scheduler.schedules import Schedule
from tests.scheduler.conftest import log_lines


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def every(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    times, t = [], start
    while t <= end:
        times.append(t)
        t += step
    return times


NIGHT_0230 = Schedule("night", "30 2 * * *", "tests.jobs.none", "Europe/Paris")


@pytest.mark.parametrize(
    ("start", "night", "engagement", "hunts"),
    [
        (  # spring: Paris goes from +01:00 to +02:00 at 01:00 UTC; 02:30 does not exist
            utc(2026, 3, 29),
            [utc(2026, 3, 29, 1, 0)],
            [utc(2026, 3, 29, 6)],
            [utc(2026, 3, 29, 6)],
        ),
        (  # autumn: back from +02:00 to +01:00 at 01:00 UTC; 02:00-03:00 happens twice
            utc(2026, 10, 25),
            [utc(2026, 10, 25, 0, 30)],
            [utc(2026, 10, 25, 6)],
            [utc(2026, 10, 25, 7)],
        ),
    ],
    ids=["spring", "autumn"],
)
def test_each_schedule_fires_at_its_instants_on_a_daylight_saving_change_day(
    clock, defaults, make_scheduler, recorder, start, night, engagement, hunts
):
    # Given the default schedules and a 02:30 Paris one, from midnight UTC of a change day
    clock.set(start)
    end = start + timedelta(hours=7, minutes=30)
    scheduler = make_scheduler([*defaults, NIGHT_0230], records=MemoryRecords())
    # When the fake clock moves through the change and the morning after it
    scheduler.run_until(end, clock)
    # Then each fired at its own instants, in its own zone, once
    assert recorder.times("night") == night
    assert recorder.times("engagement") == engagement
    assert recorder.times("hunts") == hunts
    assert recorder.times("campaigns") == every(start, end, timedelta(minutes=5))
    assert recorder.times("outbox-relay") == every(start, end, timedelta(minutes=1))
    assert recorder.duplicates() == []


def test_two_schedulers_over_a_simulated_day_fire_each_fire_once(
    clock, defaults, make_scheduler, recorder
):
    # Given two schedulers on one Redis, the second a second behind the first
    # (their last fires kept in memory: this simulation fires 3,500 times)
    start = utc(2026, 3, 2)
    clock.set(start)
    records = MemoryRecords()
    a = make_scheduler(defaults, owner="a", records=records)
    b = make_scheduler(defaults, owner="b", records=records)
    end = start + timedelta(days=1)
    # When both run through a day
    fired_by_a, fired_by_b = len(a.run_due(start)), len(b.run_due(start))
    while (wake := min(a.next_wake(), b.next_wake())) <= end:
        clock.set(wake)
        fired_by_a += len(a.run_due(wake))
        clock.set(wake + timedelta(seconds=1))
        fired_by_b += len(b.run_due(wake + timedelta(seconds=1)))
    # Then every fire ran once, each by one of them
    assert recorder.duplicates() == []
    assert recorder.times("outbox-relay") == every(start, end, timedelta(minutes=1))
    assert recorder.times("campaigns") == every(start, end, timedelta(minutes=5))
    assert recorder.times("engagement") == [utc(2026, 3, 2, 6)]
    assert recorder.times("hunts") == [utc(2026, 3, 2, 7)]
    assert fired_by_a + fired_by_b == len(recorder.calls)
    # And the last fire of each schedule is recorded
    assert records.last_fire_times()["outbox-relay"] == end


def test_a_fire_missed_within_its_window_runs_once_on_start(
    db, clock, make_scheduler, recorder, log_stream
):
    # Given hunts at 08:00 Paris with a 6 h window, fired yesterday, then the schedulers were down
    hunts = Schedule("hunts", "0 8 * * *", "tests.jobs.none", "Europe/Paris", timedelta(hours=6))
    clock.set(utc(2026, 3, 2, 6))
    make_scheduler([hunts]).run_until(utc(2026, 3, 2, 8), clock)
    assert recorder.times("hunts") == [utc(2026, 3, 2, 7)]
    # When two schedulers start 5 h after today's 08:00 (07:00 UTC)
    now = utc(2026, 3, 3, 12)
    clock.set(now)
    first = make_scheduler([hunts], owner="a").run_due(now)
    second = make_scheduler([hunts], owner="b").run_due(now)
    # Then today's missed fire ran once, flagged as a catch-up
    assert recorder.times("hunts") == [utc(2026, 3, 2, 7), utc(2026, 3, 3, 7)]
    assert [o.catch_up for o in first] == [True] and second == []
    [fire] = [line for line in log_lines(log_stream) if line["event"] == "scheduler.fire"][-1:]
    assert (fire["schedule"], fire["fire_time"], fire["catch_up"]) == (
        "hunts",
        "2026-03-03T07:00:00+00:00",
        True,
    )
    # And a later restart does not run it again (it is recorded)
    assert make_scheduler([hunts], owner="c").run_due(now + timedelta(minutes=1)) == []
    assert len(recorder.times("hunts")) == 2


def test_a_fire_missed_beyond_its_window_never_runs(sqlite_db, clock, make_scheduler, recorder):
    hunts = Schedule("hunts", "0 8 * * *", "tests.jobs.none", "Europe/Paris", timedelta(hours=6))
    # Given the scheduler starts 6 h 1 min after today's 08:00 Paris
    now = utc(2026, 3, 3, 13, 1)
    clock.set(now)
    scheduler = make_scheduler([hunts])
    # When it runs until the next morning
    scheduler.run_until(utc(2026, 3, 4, 7, 30), clock)
    # Then only tomorrow's fire ran
    assert recorder.times("hunts") == [utc(2026, 3, 4, 7)]


def test_a_schedule_without_a_window_does_not_catch_up(sqlite_db, clock, make_scheduler, recorder):
    tick = Schedule("tick", "*/5 * * * *", "tests.jobs.none")
    clock.set(utc(2026, 3, 3, 12, 4, 59))
    scheduler = make_scheduler([tick])
    assert scheduler.run_due() == []
    scheduler.run_until(utc(2026, 3, 3, 12, 5), clock)
    assert recorder.times("tick") == [utc(2026, 3, 3, 12, 5)]


def test_overdue_fires_of_a_busy_loop_collapse_into_the_latest(
    sqlite_db, clock, make_scheduler, recorder
):
    # Given a per-minute schedule whose loop was held up for 3 minutes
    tick = Schedule("tick", "* * * * *", "tests.jobs.none")
    clock.set(utc(2026, 3, 3, 12, 0, 30))
    scheduler = make_scheduler([tick])
    scheduler.start()
    clock.set(utc(2026, 3, 3, 12, 3, 10))
    # Then one fire runs, the latest
    scheduler.run_due()
    assert recorder.times("tick") == [utc(2026, 3, 3, 12, 3)]


def test_a_failing_job_does_not_stop_the_others_and_is_recorded(
    db, clock, make_scheduler, recorder, log_stream
):
    # Given two schedules due at the same time, one of which fails
    schedules = [
        Schedule("broken", "0 6 * * *", "tests.jobs.none"),
        Schedule("fine", "0 6 * * *", "tests.jobs.none"),
    ]
    clock.set(utc(2026, 3, 3, 5, 59))
    scheduler = make_scheduler(schedules)

    def broken(fire_time):
        raise RuntimeError("database is on fire\nsecond line")

    scheduler.jobs["broken"] = broken
    # When the fires come
    outcomes = scheduler.run_until(utc(2026, 3, 3, 6, 1), clock)
    # Then the other one ran, and the failure is recorded in one line
    assert recorder.times("fine") == [utc(2026, 3, 3, 6)]
    assert [(o.fire.schedule, o.error) for o in outcomes] == [
        ("broken", "RuntimeError: database is on fire"),
        ("fine", None),
    ]
    assert last_fires()["broken"].error == "RuntimeError: database is on fire"
    failed = [line for line in log_lines(log_stream) if line["event"] == "scheduler.fire_failed"]
    assert failed[0]["schedule"] == "broken"


def test_an_interrupted_fire_is_handed_back_and_caught_up_on_the_next_start(
    sqlite_db, clock, make_scheduler, recorder
):
    daily = Schedule("daily", "0 6 * * *", "tests.jobs.none", catch_up=timedelta(hours=6))
    clock.set(utc(2026, 3, 3, 5, 59))
    scheduler = make_scheduler([daily], owner="a")

    def interrupted(fire_time):
        raise KeyboardInterrupt  # a second SIGTERM arrives mid-fire

    scheduler.jobs["daily"] = interrupted
    with pytest.raises(KeyboardInterrupt):
        scheduler.run_until(utc(2026, 3, 3, 6), clock)
    assert "daily" not in last_fires()
    # When a scheduler starts again a little later
    clock.set(utc(2026, 3, 3, 6, 2))
    make_scheduler([daily], owner="b").run_due()
    # Then the fire runs (the lock was released, nothing was recorded)
    assert recorder.times("daily") == [utc(2026, 3, 3, 6)]


def test_every_fire_is_a_json_log_line_with_what_it_enqueued(
    sqlite_db, clock, make_scheduler, log_stream
):
    daily = Schedule("hunts", "0 8 * * *", "tests.jobs.none", "Europe/Paris")
    clock.set(utc(2026, 3, 29, 5))
    make_scheduler([daily]).run_until(utc(2026, 3, 29, 6, 30), clock)
    [line] = [line for line in log_lines(log_stream) if line["event"] == "scheduler.fire"]
    assert line["schedule"] == "hunts"
    assert line["fire_time"] == "2026-03-29T06:00:00+00:00"
    assert line["wall_time"] == "2026-03-29T08:00:00"
    assert line["timezone"] == "Europe/Paris"
    assert line["enqueued"] == {"enqueued": 1}


def test_run_forever_stops_cleanly_when_asked(sqlite_db, clock, make_scheduler, recorder):
    scheduler = make_scheduler([Schedule("tick", "* * * * *", "tests.jobs.none")])
    thread = threading.Thread(target=scheduler.run_forever)
    thread.start()
    scheduler.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_embedded_mode_locks_in_process_and_does_the_work_in_process(sqlite_db, clock, stub_broker):
    # Given no Redis (the in-process broker) and a job that enqueues work
    done: list[int] = []

    @dramatiq.actor(queue_name="scheduler-test", broker=stub_broker)
    def unit_of_work(n: int) -> None:
        done.append(n)

    def job(fire_time):
        unit_of_work.send(7)
        return {"enqueued": 1}

    tick = Schedule("tick", "*/5 * * * *", "tests.jobs.none")
    scheduler = build_scheduler(schedules=[tick], jobs={"tick": job})
    assert isinstance(scheduler.locks, LocalFireLocks)
    # When a fire comes
    clock.set(utc(2026, 3, 3, 12, 4))
    scheduler.run_until(utc(2026, 3, 3, 12, 5), clock)
    # Then the scheduler itself did the work it enqueued
    assert done == [7]


def test_on_redis_the_scheduler_locks_in_the_brokers_redis(sqlite_db, clock, fakeredis_broker):
    tick = Schedule("tick", "*/5 * * * *", "tests.jobs.none")
    fired: list[datetime] = []
    scheduler = build_scheduler(schedules=[tick], jobs={"tick": lambda t: fired.append(t) or {}})
    assert scheduler.after_fire is None
    clock.set(utc(2026, 3, 3, 12, 4))
    scheduler.run_until(utc(2026, 3, 3, 12, 5), clock)
    assert fired == [utc(2026, 3, 3, 12, 5)]
    assert fakeredis_broker.client.exists("outreach-test:__scheduler__:tick:2026-03-03T12:05:00")


class FlakyLocks:
    """Locks whose store is down for the first `outages` asks."""

    def __init__(self, outages: int) -> None:
        self.outages = outages
        self.inner = LocalFireLocks()

    def acquire(self, fire, ttl):
        if self.outages:
            self.outages -= 1
            raise redis.exceptions.ConnectionError("Redis went away")
        return self.inner.acquire(fire, ttl)

    def release(self, fire):
        self.inner.release(fire)


def test_a_fire_waits_for_its_lock_while_redis_is_away(clock, recorder, log_stream):
    # Given a per-5-minutes schedule and a Redis that is down for the first two asks
    tick = Schedule("tick", "*/5 * * * *", "tests.jobs.none")
    scheduler = Scheduler(
        [tick], FlakyLocks(outages=2), jobs=recorder.jobs([tick]), records=MemoryRecords()
    )
    clock.set(utc(2026, 3, 3, 12, 4, 59))
    scheduler.start()
    # When the fire comes, and the loop turns again every second
    for second in range(4):
        clock.set(utc(2026, 3, 3, 12, 5, second))
        scheduler.run_due()
    # Then nothing fired without its lock, and it fired once Redis answered
    assert recorder.times("tick") == [utc(2026, 3, 3, 12, 5)]
    events = [line["event"] for line in log_lines(log_stream)]
    assert events.count("scheduler.lock_unavailable") == 2


def test_the_loop_backs_off_while_redis_is_away_and_says_when_it_is_back(
    clock, recorder, log_stream
):
    # Given a per-5-minutes schedule and a Redis that is down for the first three asks
    tick = Schedule("tick", "*/5 * * * *", "tests.jobs.none")
    scheduler = Scheduler(
        [tick], FlakyLocks(outages=3), jobs=recorder.jobs([tick]), records=MemoryRecords()
    )
    clock.set(utc(2026, 3, 3, 12, 5))
    scheduler.start(utc(2026, 3, 3, 12, 4, 59))
    # When the loop turns while the fire is due and the lock cannot be asked
    delays = []
    for _ in range(3):
        scheduler.run_due()
        delays.append(scheduler.lock_retry_delay())
    # Then each wait before the next ask is twice the one before
    assert delays == [0.25, 0.5, 1.0]
    # And once Redis answers, the fire happens, the waits start over, and the log says so
    scheduler.run_due()
    assert recorder.times("tick") == [utc(2026, 3, 3, 12, 5)]
    assert scheduler.lock_failures == 0
    events = [line["event"] for line in log_lines(log_stream)]
    assert events.count("scheduler.lock_unavailable") == 3
    assert events.count("scheduler.lock_recovered") == 1
