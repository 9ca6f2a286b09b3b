"""The sweep: one streamed query per check, one message per due user, in bulk."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
import pytest

from producers.engagement import due_users, run_daily
from storage.models.engagement import GOODBYE_SENT
from worker.actors.engagement import process_engagement_user
from worker.engagement.checks import INACTIVITY, TIMEOUT
from worker.enqueue import enqueue_many


def test_pages_cover_every_due_user_once_even_with_equal_timestamps(make_user, clock):
    # Given seven inactive users, several last active at the very same instant
    expected = [make_user(inactive_for=timedelta(days=14 + i % 3)) for i in range(7)]
    make_user(inactive_for=timedelta(days=1))
    # When the check is streamed two users at a time
    pages = list(due_users(INACTIVITY, clock.now(), page_size=2))
    # Then every due user comes exactly once, in pages no larger than asked
    seen = [user_id for page in pages for user_id, _ in page]
    assert sorted(seen) == sorted(expected)
    assert max(len(page) for page in pages) == 2


def test_opted_out_users_are_flagged_by_the_inactivity_query(make_user, clock):
    kept = make_user(inactive_for=timedelta(days=20))
    opted = make_user(inactive_for=timedelta(days=20), opted_out=True)
    no_profile = make_user(inactive_for=timedelta(days=20), profile=False)
    [page] = list(due_users(INACTIVITY, clock.now()))
    assert dict(page) == {kept: False, opted: True, no_profile: False}


def test_the_timeout_query_ignores_the_opt_out(make_user, clock):
    opted = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now(), opted_out=True)
    assert list(due_users(TIMEOUT, clock.now())) == [[(opted, False)]]


def test_the_sweep_enqueues_one_message_per_due_user_and_check(make_user, clock, stub_broker):
    a = make_user(inactive_for=timedelta(days=14))
    b = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now())
    make_user(inactive_for=timedelta(days=14), opted_out=True)
    started = run_daily(clock.now())
    decoded = [dramatiq.Message.decode(raw) for raw in stub_broker.queues["engagement"].queue]
    messages = [tuple(m.args) for m in decoded if m.actor_name == "process_engagement_user"]
    watches = [tuple(m.args) for m in decoded if m.actor_name == "watch_engagement_run"]
    run_id = started["run_id"]
    assert sorted(messages) == [(run_id, a, "inactivity_14d"), (run_id, b, "goodbye_timeout")]
    # And one message that watches the run until every user has an outcome
    assert watches == [(run_id,)]
    assert started["enqueued"] == 2 and started["skipped_opted_out"] == 1
    assert started["enqueued_by_check"] == {
        "inactivity_14d": 1,
        "goodbye_timeout": 1,
        "reminder_due": 0,
    }


def test_bulk_enqueue_on_redis_delivers_every_message(fakeredis_broker):
    # Given a worker on a Redis broker
    seen: list[int] = []

    @dramatiq.actor(queue_name="bulk_test", max_retries=0)
    def remember(i: int) -> None:
        seen.append(i)

    # When 1,234 messages are enqueued in bulk (several pipelines)
    count = enqueue_many(remember.message(i) for i in range(1234))
    worker = dramatiq.Worker(fakeredis_broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        fakeredis_broker.join("bulk_test", timeout=30_000)
        worker.join()
    finally:
        worker.stop()
    # Then each one was processed once
    assert count == 1234
    assert sorted(seen) == list(range(1234))


def test_bulk_enqueue_on_real_redis_is_what_a_worker_reads(redis_broker):
    enqueue_many(process_engagement_user.message(1, i, "inactivity_14d") for i in range(3))
    client = redis_broker.client
    ids = client.lrange(f"{redis_broker.namespace}:engagement", 0, -1)
    bodies = client.hmget(f"{redis_broker.namespace}:engagement.msgs", ids)
    assert sorted(dramatiq.Message.decode(b).args[1] for b in bodies) == [0, 1, 2]


def test_a_sweep_over_many_pages_enqueues_every_due_user_once(
    make_user, clock, stub_broker, monkeypatch
):
    import producers.engagement as sweep

    # Given nine inactive users, read three at a time (a page is enqueued while the next is read)
    monkeypatch.setattr(sweep, "PAGE_SIZE", 3)
    due = [make_user(inactive_for=timedelta(days=14 + i % 2)) for i in range(9)]
    # When the daily run sweeps them
    started = run_daily(clock.now())
    # Then each one has exactly one message
    decoded = [dramatiq.Message.decode(raw) for raw in stub_broker.queues["engagement"].queue]
    users = [m.args[1] for m in decoded if m.actor_name == "process_engagement_user"]
    assert sorted(users) == sorted(due)
    assert started["enqueued"] == 9


def test_an_enqueue_that_fails_stops_the_sweep_before_the_run_is_closed(
    make_user, clock, stub_broker, monkeypatch
):
    import producers.engagement as sweep
    from storage.models.engagement import EngagementRun

    # Given nine inactive users read three at a time, and a broker that fails on the second page
    monkeypatch.setattr(sweep, "PAGE_SIZE", 3)
    for i in range(9):
        make_user(inactive_for=timedelta(days=14 + i))
    enqueue = sweep._enqueue
    pages = 0

    def failing_enqueue(*args):
        nonlocal pages
        pages += 1
        if pages == 2:
            raise ConnectionError("Redis went away")
        enqueue(*args)

    monkeypatch.setattr(sweep, "_enqueue", failing_enqueue)
    # When the daily run sweeps them
    with pytest.raises(ConnectionError):
        run_daily(clock.now())
    # Then the run's sweep is not closed (the run is not counted as complete), and no page
    # after the failed one was enqueued
    run = EngagementRun.get()
    assert run.sweep_finished_at is None
    decoded = [dramatiq.Message.decode(raw) for raw in stub_broker.queues["engagement"].queue]
    assert [m.actor_name for m in decoded] == ["process_engagement_user"] * 3
