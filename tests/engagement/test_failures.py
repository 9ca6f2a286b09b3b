"""One user's failure never stops the others: retried, then counted as failed (invariant 3)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage.models import OutboxMessage
from storage.models.engagement import ACTIVE, GOODBYE_SENT
from tests.engagement.conftest import log_lines, state_of
from worker.actors.engagement import process_engagement_user
from worker.engagement import process


@pytest.fixture
def fast_retries():
    """Retries without the production backoff, so a test sees them run out in milliseconds."""
    saved = dict(process_engagement_user.options)
    process_engagement_user.options.update(max_retries=2, min_backoff=1, max_backoff=5)
    yield
    process_engagement_user.options.clear()
    process_engagement_user.options.update(saved)


def test_a_user_that_cannot_be_reached_fails_alone_and_is_reported(
    make_user, daily_run, stub_broker, log_stream
):
    # Given three inactive users, the second with no WhatsApp id and no phone
    first = make_user(inactive_for=timedelta(days=14))
    unreachable = make_user(inactive_for=timedelta(days=14), whatsapp_jid=None, phone=None)
    third = make_user(inactive_for=timedelta(days=14))
    # When the daily job runs
    result = daily_run()
    # Then the others got their goodbye
    assert state_of(first).state == state_of(third).state == GOODBYE_SENT
    assert OutboxMessage.select().count() == 2
    # And the failing user changed nothing (their transition rolled back with the failed claim)
    assert state_of(unreachable).state == ACTIVE
    # And the run reports them under failed and errors, and is finished
    assert (result["succeeded"], result["failed"], result["finished"]) == (2, 1, True)
    assert result["errors"] == [
        {
            "userId": unreachable,
            "check": "inactivity_14d",
            "error": f"user {unreachable} has no WhatsApp id and no phone number",
        }
    ]
    # And bad input is not retried: the message went straight to the dead letters
    assert len(stub_broker.dead_letters) == 1
    # And the failure was logged with the user, the check and the error
    [line] = log_lines(log_stream, "engagement.user_failed")
    assert (line["user_id"], line["check_type"], line["run_id"]) == (
        unreachable,
        "inactivity_14d",
        result["run_id"],
    )


def test_a_user_whose_processing_keeps_raising_is_retried_then_counted_failed(
    make_user, daily_run, monkeypatch, fast_retries, clock
):
    # Given three due users, and processing that always raises for the second
    users = [make_user(inactive_for=timedelta(days=14)) for _ in range(3)]
    make_user(state="goodbye_sent", goodbye_expires_at=clock.now())
    broken = users[1]
    attempts: list[int] = []
    real_goodbye_claim = process.goodbye_claim

    def flaky(row, now):
        if row.user_id == broken:
            attempts.append(broken)
            raise RuntimeError("database went away")
        return real_goodbye_claim(row, now)

    monkeypatch.setattr(process, "goodbye_claim", flaky)
    # When the daily job runs
    result = daily_run()
    # Then it was tried 1 + 2 times, then counted failed; everyone else was processed
    assert len(attempts) == 3
    assert state_of(broken).state == ACTIVE
    assert [state_of(u).state for u in (users[0], users[2])] == [GOODBYE_SENT, GOODBYE_SENT]
    assert (result["succeeded"], result["failed"], result["finished"]) == (3, 1, True)
    [error] = result["errors"]
    assert error["userId"] == broken and "RuntimeError: database went away" in error["error"]


def test_a_transient_failure_that_clears_on_retry_succeeds_once(
    make_user, daily_run, monkeypatch, fast_retries
):
    user_id = make_user(inactive_for=timedelta(days=14))
    real_goodbye_claim = process.goodbye_claim
    calls: list[int] = []

    def fails_once(row, now):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("connection reset")
        return real_goodbye_claim(row, now)

    monkeypatch.setattr(process, "goodbye_claim", fails_once)
    result = daily_run()
    assert len(calls) == 2
    assert state_of(user_id).state == GOODBYE_SENT
    assert OutboxMessage.select().count() == 1
    assert (result["succeeded"], result["failed"]) == (1, 0)


def test_a_message_for_an_unknown_run_is_refused_and_dead_lettered(make_user, stub_broker):
    from producers.embedded import drain

    user_id = make_user(inactive_for=timedelta(days=14))
    process_engagement_user.send(987, user_id, "inactivity_14d")
    drain()
    assert state_of(user_id).state == ACTIVE
    assert len(stub_broker.dead_letters) == 1


def test_a_message_with_an_unknown_check_is_refused(make_user, daily_run, stub_broker):
    from producers.embedded import drain
    from producers.engagement import run_daily
    from storage import clock as clock_module
    from worker.engagement.runs import job_result

    user_id = make_user(inactive_for=timedelta(days=1))
    run_id = run_daily(clock_module.now())["run_id"]
    process_engagement_user.send(run_id, user_id, "weekly")
    drain()
    [error] = job_result(run_id)["errors"]
    assert error["error"].startswith("unknown check 'weekly'")
    assert len(stub_broker.dead_letters) == 1
