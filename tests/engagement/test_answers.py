"""Users' answers to the goodbye (come back, remind me later, stop), by function and by command.

Every answer is a state-machine trigger applied through `transition_state`; an answer the
user's state refuses is one line, exit 2, and nothing changed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from producers.cli import main
from storage.errors import InvalidInput, InvalidState, NotFound
from storage.models import EngagementState, EngagementTransition, User, UserProfile
from storage.models.engagement import ACTIVE, DORMANT, GOODBYE_SENT, REMIND_LATER
from tests.engagement.conftest import state_of
from worker.engagement.answers import answer_goodbye
from worker.engagement.state_machine import OPT_OUT, REMIND_LATER_TRIGGER, USER_ACTIVITY


def outreach(*args: str):
    return CliRunner().invoke(main, ["engagement", "answer", *args])


def opted_out(user_id: int) -> bool:
    return bool(UserProfile.get(UserProfile.user == user_id).reengagement_opt_out)


def snapshot() -> tuple[Any, ...]:
    """Everything an answer could change, to show a refused one changed nothing."""
    states = list(
        EngagementState.select(
            EngagementState.user,
            EngagementState.state,
            EngagementState.version,
            EngagementState.last_activity_at,
            EngagementState.goodbye_expires_at,
            EngagementState.remind_at,
        )
        .order_by(EngagementState.user)
        .tuples()
    )
    profiles = list(
        UserProfile.select(UserProfile.user, UserProfile.reengagement_opt_out)
        .order_by(UserProfile.user)
        .tuples()
    )
    return states, profiles, EngagementTransition.select().count()


@pytest.fixture
def goodbye_sent(make_user, clock) -> int:
    """A user who was sent the goodbye an hour ago."""
    return make_user(
        state=GOODBYE_SENT,
        inactive_for=timedelta(days=14, hours=1),
        goodbye_expires_at=clock.now() + timedelta(hours=47),
    )


def test_remind_later_after_the_goodbye_sets_the_reminder(goodbye_sent, clock):
    # Given a user who was sent the goodbye
    # When they answer "remind me later" in 3 days
    result = outreach(str(goodbye_sent), "remind-later", "--remind-in-days", "3")
    # Then they are remind_later, due in 3 days, the goodbye's expiry cleared, and it is audited
    assert result.exit_code == 0, result.output
    remind_at = clock.now() + timedelta(days=3)
    assert result.stdout.strip() == (
        f"user {goodbye_sent}: goodbye_sent -> remind_later (reminder due {remind_at.isoformat()})"
    )
    state = state_of(goodbye_sent)
    assert (state.state, state.remind_at, state.goodbye_expires_at) == (
        REMIND_LATER,
        remind_at,
        None,
    )
    [audit] = EngagementTransition.select()
    assert (audit.from_state, audit.to_state, audit.trigger) == (
        GOODBYE_SENT,
        REMIND_LATER,
        REMIND_LATER_TRIGGER,
    )


def test_remind_later_without_days_is_due_in_a_week_and_then_the_daily_run_settles_it(
    goodbye_sent, clock, daily_run
):
    # Given a user who answered "remind me later" with no delay
    transition = answer_goodbye(goodbye_sent, "remind-later")
    assert transition.to_state == REMIND_LATER
    assert state_of(goodbye_sent).remind_at == clock.now() + timedelta(days=7)
    # When the daily job runs a day before, then on the day the reminder is due
    clock.advance(timedelta(days=6))
    assert daily_run()["processed"] == 0
    clock.advance(timedelta(days=1))
    job = daily_run()
    # Then the reminder check moved them to dormant
    assert (job["processed"], job["succeeded"], job["by_check"]["reminder_due"]["succeeded"]) == (
        1,
        1,
        1,
    )
    assert state_of(goodbye_sent).state == DORMANT


def test_come_back_makes_the_user_active_again(goodbye_sent, clock):
    result = outreach(str(goodbye_sent), "come-back")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"user {goodbye_sent}: goodbye_sent -> active (last activity {clock.now().isoformat()})"
    )
    state = state_of(goodbye_sent)
    assert (state.state, state.last_activity_at, state.goodbye_expires_at) == (
        ACTIVE,
        clock.now(),
        None,
    )
    [audit] = EngagementTransition.select()
    assert audit.trigger == USER_ACTIVITY


def test_stop_after_the_goodbye_ends_in_silence_and_opts_out(goodbye_sent, clock, daily_run):
    # Given a user who was sent the goodbye, when they answer "stop"
    result = outreach(str(goodbye_sent), "stop")
    # Then they are dormant and opted out of re-engagement
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"user {goodbye_sent}: goodbye_sent -> dormant (opted out of re-engagement)"
    )
    assert state_of(goodbye_sent).state == DORMANT
    assert opted_out(goodbye_sent)
    [audit] = EngagementTransition.select()
    assert audit.trigger == OPT_OUT
    # And once they are active and inactive again, the daily job skips them: no second goodbye
    answer_goodbye(goodbye_sent, "come-back")
    clock.advance(timedelta(days=15))
    job = daily_run()
    assert (job["succeeded"], job["skipped"]) == (0, 1)


def test_stop_while_active_keeps_the_user_active_and_opts_them_out(make_user):
    user_id = make_user()
    transition = answer_goodbye(user_id, "stop")
    assert (transition.from_state, transition.to_state) == (ACTIVE, ACTIVE)
    assert state_of(user_id).state == ACTIVE
    assert opted_out(user_id)


def test_stop_from_a_user_the_job_never_saw_is_honoured(make_user, account, clock):
    # Given a user with no engagement state yet
    user = User.create(account=account, name="Bea", created_at=clock.now())
    # When they answer "stop", then they are enrolled active and opted out
    assert answer_goodbye(user.id, "stop").to_state == ACTIVE
    assert opted_out(user.id)


# --- refusals: one line, exit 2, nothing changed ------------------------------------------------


@pytest.mark.parametrize(
    ("state", "args", "message"),
    [
        (
            ACTIVE,
            ["remind-later"],
            "error: user {id} is active: 'remind-later' is allowed only from goodbye_sent",
        ),
        (
            DORMANT,
            ["remind-later", "--remind-in-days", "2"],
            "error: user {id} is dormant: 'remind-later' is allowed only from goodbye_sent",
        ),
        (
            GOODBYE_SENT,
            ["remind-later", "--remind-in-days", "-3"],
            "error: remind in days must be from 1 to 365, not -3",
        ),
        (
            GOODBYE_SENT,
            ["remind-later", "--remind-in-days", "0"],
            "error: remind in days must be from 1 to 365, not 0",
        ),
        (
            GOODBYE_SENT,
            ["remind-later", "--remind-in-days", "100000000"],
            "error: remind in days must be from 1 to 365, not 100000000",
        ),
        (
            GOODBYE_SENT,
            ["stop", "--remind-in-days", "3"],
            "error: --remind-in-days goes with the answer 'remind-later' only",
        ),
    ],
)
def test_an_answer_that_cannot_apply_is_refused_and_changes_nothing(
    make_user, clock, state, args, message
):
    # Given a user in `state`
    user_id = make_user(state=state, goodbye_expires_at=clock.now() + timedelta(hours=1))
    before = snapshot()
    # When an answer that cannot apply is recorded
    result = outreach(str(user_id), *args)
    # Then one clear line, exit 2, and nothing changed
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == message.format(id=user_id)
    assert snapshot() == before


def test_an_unknown_user_is_one_line_and_exit_2(db):
    result = outreach("999", "stop")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: user 999 does not exist"
    assert snapshot() == ([], [], 0)


def test_an_unknown_answer_is_one_line_and_exit_2(make_user):
    user_id = make_user(state=GOODBYE_SENT)
    before = snapshot()
    result = outreach(str(user_id), "maybe")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "'maybe' is not one of 'come-back', 'remind-later', 'stop'" in result.stderr
    assert snapshot() == before


def test_remind_later_from_a_user_never_sent_a_goodbye_creates_nothing(make_user, account, clock):
    user = User.create(account=account, name="Bea", created_at=clock.now())
    before = snapshot()
    with pytest.raises(InvalidState, match=f"user {user.id} was never sent a goodbye"):
        answer_goodbye(user.id, "remind-later")
    assert snapshot() == before


def test_the_plain_function_refuses_what_the_command_refuses(make_user, db):
    user_id = make_user()
    with pytest.raises(NotFound):
        answer_goodbye(999, "come-back")
    with pytest.raises(InvalidInput, match="unknown answer 'later'"):
        answer_goodbye(user_id, "later")
    with pytest.raises(InvalidState, match="is active"):
        answer_goodbye(user_id, "remind-later", remind_in_days=3)
