"""At-least-once delivery: the same per-user message twice, or twice at once, acts once
(invariant 1). Two runs the same day, as two schedulers would fire, act once too."""

from __future__ import annotations

import threading
from datetime import timedelta

import dramatiq

from producers.embedded import drain
from producers.engagement import run_daily
from storage.db import database
from storage.models import (
    EngagementOutcome,
    EngagementRun,
    EngagementTransition,
    OutboxMessage,
)
from storage.models.engagement import DORMANT, GOODBYE_SENT
from tests.engagement.conftest import state_of
from worker.actors.engagement import process_engagement_user
from worker.engagement.process import process_user
from worker.engagement.runs import job_result


def stub_broker_messages() -> list[dramatiq.Message]:
    broker = dramatiq.get_broker()
    return [dramatiq.Message.decode(raw) for raw in broker.queues["engagement"].queue]


def drop_all_messages() -> None:
    dramatiq.get_broker().flush_all()


def _run_without_work(clock) -> int:
    """A run whose sweep has enqueued its messages, none of them worked yet."""
    return int(run_daily(clock.now())["run_id"])


def test_the_same_message_delivered_twice_acts_once(make_user, clock, stub_broker):
    # Given a run with one inactive user
    user_id = make_user(inactive_for=timedelta(days=14))
    run_id = _run_without_work(clock)
    # When the broker delivers the user's message a second time
    process_engagement_user.send(run_id, user_id, "inactivity_14d")
    drain()
    # Then one transition, one goodbye, one outcome, and the run counted it once
    assert state_of(user_id).state == GOODBYE_SENT
    assert EngagementTransition.select().count() == 1
    assert OutboxMessage.select().count() == 1
    [outcome] = EngagementOutcome.select()
    assert outcome.outcome == "succeeded"
    result = job_result(run_id)
    assert (result["enqueued"], result["processed"], result["finished"]) == (1, 1, True)


def test_the_same_message_twice_at_the_same_time_acts_once(make_user, clock, stub_broker):
    # Given a run with users due for a goodbye and a timeout
    inactive = make_user(inactive_for=timedelta(days=14))
    expired = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now())
    run_id = _run_without_work(clock)
    stub_broker.flush_all()
    # When eight workers take each user's message at the same moment
    barrier = threading.Barrier(16)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def work(user_id: int, check: str) -> None:
        try:
            with database.connection_context():
                barrier.wait()
                outcomes.append(process_user(run_id, user_id, check))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(user_id, check))
        for user_id, check in [(inactive, "inactivity_14d"), (expired, "goodbye_timeout")] * 8
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each user had one transition, the inactive one one goodbye
    assert errors == []
    assert sorted(outcomes).count("succeeded") == 2
    assert state_of(inactive).state == GOODBYE_SENT
    assert state_of(expired).state == DORMANT
    assert EngagementTransition.select().count() == 2
    assert OutboxMessage.select().count() == 1
    # And the run counted one outcome per user and is finished
    assert EngagementOutcome.select().count() == 2
    result = job_result(run_id)
    assert (result["succeeded"], result["skipped"], result["finished"]) == (2, 0, True)


def test_duplicates_through_the_worker_threads_act_once(make_user, clock, stub_broker):
    # Given a run's messages, each one enqueued four times over
    users = [make_user(inactive_for=timedelta(days=14 + i)) for i in range(5)]
    run_id = _run_without_work(clock)
    for _ in range(3):
        for user_id in users:
            process_engagement_user.send(run_id, user_id, "inactivity_14d")
    # When the worker threads process them all
    drain()
    # Then every user has one transition and one goodbye
    assert EngagementTransition.select().count() == 5
    assert OutboxMessage.select().count() == 5
    assert [state_of(u).state for u in users] == [GOODBYE_SENT] * 5
    assert job_result(run_id)["succeeded"] == 5


def test_two_runs_fired_for_the_same_day_act_once(make_user, clock):
    # Given two schedulers that fire the same day's run before any worker has started
    users = [make_user(inactive_for=timedelta(days=20)) for _ in range(3)]
    expired = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now())
    first = run_daily(clock.now())["run_id"]
    second = run_daily(clock.now())["run_id"]
    # When the workers process both runs' messages
    drain()
    # Then each user moved once, and one goodbye each was sent
    assert EngagementTransition.select().count() == 4
    assert OutboxMessage.select().count() == 3
    assert [state_of(u).state for u in users] == [GOODBYE_SENT] * 3
    assert state_of(expired).state == DORMANT
    # And both runs finished, between them four successes and the rest skipped
    results = [job_result(first), job_result(second)]
    assert all(r["finished"] for r in results)
    assert sum(r["succeeded"] for r in results) == 4
    assert sum(r["skipped"] for r in results) == 4


def test_a_lost_watch_message_is_made_up_for_by_the_report(make_user, clock, log_stream):
    from tests.engagement.conftest import log_lines

    # Given a run whose watch message was lost (Redis restarted) after the users were worked
    make_user(inactive_for=timedelta(days=14))
    run_id = run_daily(clock.now())["run_id"]
    user_messages = [m for m in stub_broker_messages() if m.actor_name == "process_engagement_user"]
    drop_all_messages()
    for message in user_messages:
        process_engagement_user.send(*message.args)
    drain()
    assert EngagementRun.get_by_id(run_id).finished_at is None
    # When the run is reported on
    result = job_result(run_id)
    # Then the outcome rows settle it: finished, and its end logged once
    assert result["finished"] and result["succeeded"] == 1 and result["pending"] == 0
    assert EngagementRun.get_by_id(run_id).finished_at == clock.now()
    job_result(run_id)
    assert len(log_lines(log_stream, "engagement.run.finished")) == 1


def test_the_watch_finishes_the_run_once_with_the_time_of_the_last_outcome(make_user, clock):
    from worker.engagement.runs import watch

    # Given a run whose only user is worked an hour after the sweep
    user_id = make_user(inactive_for=timedelta(days=14))
    run_id = run_daily(clock.now())["run_id"]
    drop_all_messages()
    assert watch(run_id) is True  # not complete: look again
    clock.advance(timedelta(hours=1))
    process_user(run_id, user_id, "inactivity_14d")
    clock.advance(timedelta(minutes=5))
    # When the watch looks again
    assert watch(run_id) is False
    # Then the run finished when its last outcome was recorded, not when it was noticed
    run = EngagementRun.get_by_id(run_id)
    assert run.finished_at == run.started_at + timedelta(hours=1)
    assert job_result(run_id)["durationMs"] == 3_600_000


def test_a_run_never_complete_is_watched_for_a_while_only(make_user, clock):
    from worker.engagement.runs import WATCH_LIMIT, watch

    make_user(inactive_for=timedelta(days=14))
    run_id = run_daily(clock.now())["run_id"]
    drop_all_messages()
    clock.advance(WATCH_LIMIT)
    assert watch(run_id) is True
    clock.advance(timedelta(seconds=1))
    assert watch(run_id) is False
    assert not job_result(run_id)["finished"]


def test_the_watch_looks_again_later_the_more_users_are_left(make_user, clock, monkeypatch):
    from worker.engagement import runs

    # Given a run of three users, none of them worked yet
    users = [make_user(inactive_for=timedelta(days=14)) for _ in range(3)]
    run_id = run_daily(clock.now())["run_id"]
    drop_all_messages()
    # Then the next look is a while per user left, within its bounds
    monkeypatch.setattr(runs, "WATCH_MS_PER_PENDING", 1_000)
    assert runs.watch_again_in(run_id, 0) == 3_000
    assert runs.watch_again_in(run_id, 5_000) == 5_000
    monkeypatch.setattr(runs, "WATCH_MS_PER_PENDING", 20_000)
    assert runs.watch_again_in(run_id, 0) == runs.WATCH_MAX_DELAY_MS
    # And sooner as users get their outcome, and never once the run is finished
    monkeypatch.setattr(runs, "WATCH_MS_PER_PENDING", 1_000)
    process_user(run_id, users[0], "inactivity_14d")
    assert runs.watch_again_in(run_id, 0) == 2_000
    for user_id in users[1:]:
        process_user(run_id, user_id, "inactivity_14d")
    assert runs.watch_again_in(run_id, 0) is None
    assert job_result(run_id)["finished"]
