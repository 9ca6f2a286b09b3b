"""`transition_state` applies the rules to the database: audited, refused cleanly, race-safe."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from storage.db import database
from storage.errors import InvalidInput, InvalidState, NotFound
from storage.models import EngagementState, EngagementTransition, UserProfile
from storage.models.engagement import ACTIVE, DORMANT, GOODBYE_SENT, REMIND_LATER
from tests.engagement.conftest import state_of
from worker.engagement.state_machine import (
    INACTIVITY_14D,
    OPT_OUT,
    REMIND_LATER_TRIGGER,
    USER_ACTIVITY,
    StateChanged,
    transition_state,
)
from worker.engagement.users import enrol, record_activity


def test_a_transition_updates_the_state_and_is_audited(make_user, clock):
    # Given an active user
    user_id = make_user(inactive_for=timedelta(days=14))
    # When the inactivity trigger is applied
    transition = transition_state(user_id, INACTIVITY_14D)
    # Then the user is goodbye_sent, the goodbye expires in 48 h, and the audit says so
    state = state_of(user_id)
    assert (transition.from_state, transition.to_state) == (ACTIVE, GOODBYE_SENT)
    assert state.state == GOODBYE_SENT
    assert state.goodbye_expires_at == clock.now() + timedelta(hours=48)
    [audit] = EngagementTransition.select()
    assert (audit.user_id, audit.from_state, audit.to_state, audit.trigger) == (
        user_id,
        ACTIVE,
        GOODBYE_SENT,
        INACTIVITY_14D,
    )
    assert audit.at == clock.now() and audit.run_id is None


def test_a_trigger_not_allowed_from_the_current_state_changes_nothing(make_user):
    user_id = make_user(state=DORMANT)
    before = state_of(user_id)
    with pytest.raises(InvalidState, match="'inactivity_14d' is not allowed from state 'dormant'"):
        transition_state(user_id, INACTIVITY_14D)
    after = state_of(user_id)
    assert (after.state, after.version) == (before.state, before.version)
    assert EngagementTransition.select().count() == 0


def test_a_user_without_engagement_state_is_not_found(db, clock):
    with pytest.raises(NotFound, match="user 999 has no engagement state"):
        transition_state(999, USER_ACTIVITY)


def test_remind_later_keeps_the_time_to_remind(make_user, clock):
    user_id = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now() + timedelta(hours=10))
    remind_at = clock.now() + timedelta(days=7)
    transition_state(user_id, REMIND_LATER_TRIGGER, remind_at=remind_at)
    state = state_of(user_id)
    assert (state.state, state.remind_at, state.goodbye_expires_at) == (
        REMIND_LATER,
        remind_at,
        None,
    )


def test_remind_later_in_the_past_is_refused_and_changes_nothing(make_user, clock):
    user_id = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now() + timedelta(hours=10))
    with pytest.raises(InvalidInput, match="not in the future"):
        transition_state(user_id, REMIND_LATER_TRIGGER, remind_at=clock.now() - timedelta(days=1))
    assert state_of(user_id).state == GOODBYE_SENT


def test_opting_out_after_the_goodbye_ends_in_silence_and_sets_the_flag(make_user, clock):
    user_id = make_user(state=GOODBYE_SENT, goodbye_expires_at=clock.now() + timedelta(hours=10))
    transition_state(user_id, OPT_OUT)
    assert state_of(user_id).state == DORMANT
    assert UserProfile.get(UserProfile.user == user_id).reengagement_opt_out is True


def test_opting_out_without_a_profile_creates_one(make_user):
    user_id = make_user(profile=False)
    transition_state(user_id, OPT_OUT)
    assert UserProfile.get(UserProfile.user == user_id).reengagement_opt_out is True


@pytest.mark.parametrize("state", [GOODBYE_SENT, REMIND_LATER, DORMANT])
def test_activity_brings_the_user_back_to_active(make_user, clock, state):
    # Given a user who went quiet
    user_id = make_user(
        state=state,
        inactive_for=timedelta(days=20),
        goodbye_expires_at=clock.now() if state == GOODBYE_SENT else None,
        remind_at=clock.now() if state == REMIND_LATER else None,
    )
    clock.advance(timedelta(hours=1))
    # When they do something
    transition = record_activity(user_id)
    # Then they are active from now, with no pending goodbye or reminder
    state_row = state_of(user_id)
    assert (transition.from_state, transition.to_state) == (state, ACTIVE)
    assert state_row.state == ACTIVE
    assert state_row.last_activity_at == clock.now()
    assert state_row.goodbye_expires_at is None and state_row.remind_at is None


def test_activity_of_a_user_new_to_engagement_enrols_them(make_user, account, clock):
    from storage.models import User

    user = User.create(account=account, name="Bo", created_at=clock.now())
    transition = record_activity(user.id)
    assert transition.to_state == ACTIVE
    assert state_of(user.id).last_activity_at == clock.now()


def test_activity_of_an_unknown_user_is_not_found(db, clock):
    with pytest.raises(NotFound, match="user 4242 does not exist"):
        record_activity(4242)


def test_enrol_refuses_an_unknown_destination(make_user):
    user_id = make_user()
    with pytest.raises(InvalidInput, match="preferred destination"):
        enrol(user_id, preferred_destination="carrier pigeon")


def test_a_transition_on_a_stale_read_is_refused(make_user):
    # Given a state read before someone else changed it
    user_id = make_user(inactive_for=timedelta(days=20))
    stale = state_of(user_id)
    record_activity(user_id)
    # When a transition is applied on the stale read
    with pytest.raises(StateChanged):
        transition_state(user_id, INACTIVITY_14D, current=stale)
    # Then the newer change stands
    assert state_of(user_id).state == ACTIVE
    assert (
        EngagementTransition.select().where(EngagementTransition.trigger == INACTIVITY_14D).count()
        == 0
    )


def test_of_two_concurrent_transitions_exactly_one_wins(make_user):
    # Given one inactive user and eight threads that read their state at the same time
    user_id = make_user(inactive_for=timedelta(days=20))
    barrier = threading.Barrier(8)
    won: list[str] = []
    lost: list[str] = []

    def attempt() -> None:
        with database.connection_context():
            row = EngagementState.get(EngagementState.user == user_id)
            barrier.wait()
            try:
                won.append(transition_state(user_id, INACTIVITY_14D, current=row).to_state)
            except StateChanged:
                lost.append("lost")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then exactly one applied it, and it was audited once
    assert won == [GOODBYE_SENT]
    assert len(lost) == 7
    assert EngagementTransition.select().count() == 1
    assert state_of(user_id).version == 1
