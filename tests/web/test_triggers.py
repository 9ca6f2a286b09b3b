"""A schedule fired on request: once per fire, whether the scheduler or a caller comes first."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from producers.scheduler.firing import RedisFireLocks
from producers.scheduler.loop import Scheduler
from producers.scheduler.records import last_fires
from producers.scheduler.schedules import Schedule
from producers.scheduler.triggers import fire_on_request
from tests.web import jobs

HUNTS = Schedule(
    "hunts", "0 8 * * *", "tests.web.jobs.count", "Europe/Paris", catch_up=timedelta(hours=6)
)


@pytest.fixture(autouse=True)
def no_calls():
    jobs.CALLS.clear()


def scheduler_on(broker) -> Scheduler:
    locks = RedisFireLocks(broker.client, broker.namespace, owner="scheduler-a")
    return Scheduler([HUNTS], locks, jobs={"hunts": jobs.count})


def test_two_requests_fire_once(db, clock):
    first = fire_on_request(HUNTS, "api:a")
    second = fire_on_request(HUNTS, "api:b")
    assert (first["fired"], second["fired"]) == (True, False)
    assert list(jobs.CALLS.values()) == [1]
    assert last_fires()["hunts"].fired_by == "api:a"


def test_a_request_after_the_scheduler_fired_does_nothing(db, clock, fakeredis_broker):
    # Given the scheduler fired today's 08:00 (07:00 UTC; the clock is at 09:00 UTC)
    scheduler = scheduler_on(fakeredis_broker)
    scheduler.start(clock.now() - timedelta(hours=3))
    assert len(scheduler.run_due(clock.now())) == 1
    # When a caller asks for the same fire
    answer = fire_on_request(HUNTS, "api:a")
    # Then it is refused as fired, the job ran once
    assert (answer["fired"], answer["fired_by"]) == (False, "scheduler-a")
    assert list(jobs.CALLS.values()) == [1]


def test_the_scheduler_skips_a_fire_a_request_made(db, clock, fakeredis_broker):
    # Given a caller fired today's sweep
    assert fire_on_request(HUNTS, "api:a")["fired"] is True
    # When the scheduler comes to the same fire (started before it, as after a deploy)
    scheduler = scheduler_on(fakeredis_broker)
    scheduler.start(clock.now() - timedelta(hours=3))
    outcomes = scheduler.run_due(clock.now())
    # Then it does not run it again: the lock is the caller's
    assert outcomes == []
    assert list(jobs.CALLS.values()) == [1]


def test_a_request_while_the_lock_is_held_elsewhere_waits_for_nothing(db, clock, fakeredis_broker):
    from producers.scheduler.firing import latest_fire, lock_ttl

    # Given another scheduler holds the lock of today's fire and has not recorded it yet
    other = RedisFireLocks(fakeredis_broker.client, fakeredis_broker.namespace, owner="b")
    fire = latest_fire(HUNTS, clock.now())
    assert fire is not None
    assert other.acquire(fire, lock_ttl(HUNTS, timedelta(minutes=1)))
    # Then a request does not run it
    answer = fire_on_request(HUNTS, "api:a")
    assert (answer["fired"], answer["reason"]) == (False, "being fired by another caller")
    assert not jobs.CALLS


def test_the_next_day_is_a_new_fire(db, clock):
    assert fire_on_request(HUNTS, "api:a")["fired"] is True
    clock.advance(timedelta(days=1))
    later = fire_on_request(HUNTS, "api:a")
    assert (later["fired"], later["wall_time"]) == (True, "2026-03-03T08:00:00")
    assert sorted(jobs.CALLS.values()) == [1, 1]


def test_a_failing_job_is_recorded_with_its_error(db, clock):
    failing = Schedule(
        "hunts", "0 8 * * *", "tests.web.jobs.fail", "Europe/Paris", catch_up=timedelta(hours=6)
    )
    answer = fire_on_request(failing, "api:a")
    assert answer["fired"] is True
    assert answer["error"] == "RuntimeError: the sweep's database went away"
    assert last_fires()["hunts"].error == answer["error"]


def test_a_fire_past_its_catch_up_window_is_refused_with_the_next_one(db, clock):
    from datetime import datetime

    from storage.errors import InvalidState

    # Given 07:30 in Paris, before today's 08:00: the latest fire is yesterday's, 23.5 h old
    clock.set(datetime(2026, 3, 2, 6, 30, tzinfo=UTC))
    with pytest.raises(InvalidState) as refused:
        fire_on_request(HUNTS, "api:a")
    # Then nothing ran, and the refusal names the next fire
    assert "next is at 2026-03-02T08:00:00 Europe/Paris" in str(refused.value)
    assert not jobs.CALLS
    assert last_fires() == {}
