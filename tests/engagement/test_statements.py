"""What one user's message costs the database, and that the cheaper form is still all or nothing.

On PostgreSQL a transition and the rows written with it (its audit, the run's outcome) are one
statement; on SQLite they are written one by one in a transaction. Both backends run every
scenario here with the same expectations, except the count of statements itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from producers.engagement import run_daily
from storage.db import database, is_postgres
from storage.errors import NotFound
from storage.models import (
    EngagementOutcome,
    EngagementState,
    EngagementTransition,
    OutboxMessage,
    User,
)
from storage.models.engagement import ACTIVE, DORMANT, GOODBYE_SENT, REMIND_LATER, SUCCEEDED
from storage.settings import get_settings
from tests.engagement.conftest import state_of
from tests.lanes import delivery_messages
from worker import pacing
from worker.engagement import process, runs
from worker.engagement.process import process_user
from worker.engagement.state_machine import GOODBYE_TIMEOUT, StateChanged, transition_state
from worker.senders import default_sender, sender_for


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement sent to the database from now on, BEGIN and COMMIT included."""
    sent: list[str] = []
    db = database.obj
    real_cursor = db.cursor

    class Counting:
        def __init__(self, cursor: Any) -> None:
            self._cursor = cursor

        def execute(self, sql: str, *args: Any) -> Any:
            sent.append(sql.split(None, 1)[0].upper())
            return self._cursor.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cursor, name)

    monkeypatch.setattr(db, "cursor", lambda *a, **k: Counting(real_cursor(*a, **k)))
    yield sent


def _run_without_work(clock: Any) -> int:
    """A run whose sweep has enqueued its messages, none of them worked yet."""
    return int(run_daily(clock.now())["run_id"])


@pytest.mark.parametrize(
    ("state", "due", "check"),
    [
        (GOODBYE_SENT, "goodbye_expires_at", "goodbye_timeout"),
        (REMIND_LATER, "remind_at", "reminder_due"),
    ],
)
def test_a_dormant_move_is_one_statement_on_postgresql(
    make_user, clock, statements, state, due, check
):
    # Given a run with one user due for a check that sends nothing
    user_id = make_user(state=state, **{due: clock.now() - timedelta(minutes=1)})
    run_id = _run_without_work(clock)
    statements.clear()
    # When the worker processes the user
    assert process_user(run_id, user_id, check) == SUCCEEDED
    # Then the move, its audit and the outcome took one statement on PostgreSQL, and one
    # transaction on SQLite
    if is_postgres():
        assert statements == ["WITH"]
    else:
        assert statements[0] == "BEGIN" and statements[-1] == "COMMIT"
    # And all three were written
    assert state_of(user_id).state == DORMANT
    [audit] = EngagementTransition.select()
    assert (audit.user_id, audit.trigger, audit.run_id) == (user_id, check, run_id)
    [outcome] = EngagementOutcome.select()
    assert (outcome.user_id, outcome.check_type, outcome.outcome) == (user_id, check, SUCCEEDED)


def test_a_goodbye_is_a_read_one_statement_then_its_delivery(
    make_user, clock, statements, stub_broker
):
    user_id = make_user(inactive_for=timedelta(days=14))
    run_id = _run_without_work(clock)
    # The goodbye's sender, as a running worker has read it already (worker.pacing keeps it).
    settings = get_settings()
    channel = settings.engagement_channel
    pacing.sender_view(default_sender(channel, settings), channel, settings)
    # And the user's account and its sender on the channel (none of its own: the default).
    account_id = User.get_by_id(user_id).account_id
    sender_for(channel, account_id)
    pacing.hours_for(OutboxMessage(account_id=account_id, source="engagement"), None, settings)
    statements.clear()
    assert process_user(run_id, user_id, "inactivity_14d") == SUCCEEDED
    if is_postgres():
        # The read; the transition with its audit, the outcome and the goodbye's claim (for
        # sending, by this worker) in one statement; then, sent, the goodbye's outcome.
        assert statements == ["SELECT", "WITH", "UPDATE"]
    else:
        # SQLite: the same rows in one transaction, then the goodbye's outcome.
        assert statements[:2] == ["SELECT", "BEGIN"] and statements[-2:] == ["COMMIT", "UPDATE"]
    assert state_of(user_id).state == GOODBYE_SENT
    [goodbye] = OutboxMessage.select()
    assert (goodbye.status, goodbye.source, goodbye.attempts) == ("sent", "engagement", 1)
    assert EngagementTransition.select().count() == EngagementOutcome.select().count() == 1
    # And no delivery message was needed
    assert not delivery_messages(stub_broker)


def test_a_goodbye_whose_transition_loses_claims_nothing(make_user, clock, stub_broker):
    # Given a user read as due for a goodbye, who comes back before the transition is written
    user_id = make_user(inactive_for=timedelta(days=14))
    run_id = _run_without_work(clock)
    reading = process.read_for_goodbye(user_id)
    assert reading is not None
    transition_state(user_id, "user_activity")
    # When the goodbye's transition is attempted against the stale reading
    with pytest.raises(StateChanged):
        transition_state(
            user_id,
            "inactivity_14d",
            run_id=run_id,
            current=reading,
            also_write=[process.goodbye_claim(reading, clock.now())],
        )
    # Then no goodbye was claimed, and nothing is waiting to be sent
    assert OutboxMessage.select().count() == 0
    assert state_of(user_id).state == ACTIVE


def test_a_goodbye_already_claimed_today_is_not_claimed_or_sent_again(
    make_user, clock, stub_broker, monkeypatch
):
    # Given a user whose goodbye for today is claimed already (sent earlier, then they came back
    # and went quiet again the same day)
    user_id = make_user(inactive_for=timedelta(days=14))
    run_id = _run_without_work(clock)
    assert process_user(run_id, user_id, "inactivity_14d") == SUCCEEDED
    first = OutboxMessage.get()
    transition_state(user_id, "user_activity")
    EngagementState.update(last_activity_at=clock.now() - timedelta(days=15)).execute()
    sent: list[int] = []
    monkeypatch.setattr(process, "send_here", lambda outbox_id, values: sent.append(outbox_id))
    # When it is processed again by another run the same day
    again = int(run_daily(clock.now())["run_id"])
    assert process_user(again, user_id, "inactivity_14d") == SUCCEEDED
    # Then the user moves, but the day's one goodbye stays the only one, and is not sent again
    assert state_of(user_id).state == GOODBYE_SENT
    assert [row.id for row in OutboxMessage.select()] == [first.id]
    assert sent == []


def test_a_dormant_move_delivered_again_acts_once_and_keeps_its_outcome(make_user, clock):
    # Given a user moved to dormant by the run's message
    user_id = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now())
    run_id = _run_without_work(clock)
    assert process_user(run_id, user_id, GOODBYE_TIMEOUT) == SUCCEEDED
    # When the broker delivers the same message again
    again = process_user(run_id, user_id, GOODBYE_TIMEOUT)
    # Then it finds the user no longer due, and the first outcome is the one that counts
    assert again == "skipped"
    assert EngagementTransition.select().count() == 1
    [outcome] = EngagementOutcome.select()
    assert outcome.outcome == SUCCEEDED
    assert runs.job_result(run_id)["succeeded"] == 1


def test_rows_given_with_a_transition_that_loses_are_not_written(make_user, clock):
    # Given an active user, and a transition that expects them to have had a goodbye
    user_id = make_user(inactive_for=timedelta(days=20))
    run_id = _run_without_work(clock)
    outcome = runs.outcome_row(run_id, user_id, GOODBYE_TIMEOUT, SUCCEEDED)
    # When it is applied
    with pytest.raises(StateChanged):
        transition_state(
            user_id,
            GOODBYE_TIMEOUT,
            run_id=run_id,
            from_state=GOODBYE_SENT,
            also_write=[outcome],
        )
    # Then neither the audit nor the outcome was written, and the user is as they were
    assert EngagementTransition.select().count() == 0
    assert EngagementOutcome.select().count() == 0
    assert state_of(user_id).state == ACTIVE


def test_a_move_whose_outcome_cannot_be_written_changes_nothing(make_user, clock):
    # Given a user due for the goodbye timeout, and a message naming a run that does not exist
    user_id = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now())
    before = state_of(user_id)
    # When the worker processes it
    with pytest.raises(NotFound, match="engagement run 987 does not exist"):
        process_user(987, user_id, GOODBYE_TIMEOUT)
    # Then the state, its version and the audit are untouched: the move went with the outcome
    after = state_of(user_id)
    assert (after.state, after.version) == (before.state, before.version) == (GOODBYE_SENT, 0)
    assert EngagementTransition.select().count() == 0
    assert EngagementOutcome.select().count() == 0
