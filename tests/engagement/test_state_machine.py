"""The state machine's rules and the daily checks' boundaries, as plain functions (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.errors import InvalidInput, InvalidState
from storage.models.engagement import ACTIVE, DORMANT, GOODBYE_SENT, REMIND_LATER, STATES
from worker.engagement.checks import INACTIVITY, REMINDER, TIMEOUT, get_check
from worker.engagement.state_machine import (
    GOODBYE_TIMEOUT,
    INACTIVITY_14D,
    OPT_OUT,
    REMIND_LATER_TRIGGER,
    REMINDER_DUE,
    TRANSITIONS,
    USER_ACTIVITY,
    Thresholds,
    is_audited,
    next_state,
    state_changes,
)

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
THRESHOLDS = Thresholds(inactivity=timedelta(days=14), goodbye_timeout=timedelta(hours=48))


@pytest.mark.parametrize(
    ("state", "trigger", "expected"),
    [
        (ACTIVE, INACTIVITY_14D, GOODBYE_SENT),
        (GOODBYE_SENT, GOODBYE_TIMEOUT, DORMANT),
        (GOODBYE_SENT, REMIND_LATER_TRIGGER, REMIND_LATER),
        (REMIND_LATER, REMINDER_DUE, DORMANT),
        (GOODBYE_SENT, OPT_OUT, DORMANT),
        (REMIND_LATER, OPT_OUT, DORMANT),
        (ACTIVE, OPT_OUT, ACTIVE),
        (DORMANT, OPT_OUT, DORMANT),
    ],
)
def test_allowed_transitions(state, trigger, expected):
    assert next_state(state, trigger) == expected


@pytest.mark.parametrize("state", STATES)
def test_user_activity_brings_every_state_back_to_active(state):
    assert next_state(state, USER_ACTIVITY) == ACTIVE


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (GOODBYE_SENT, INACTIVITY_14D),
        (DORMANT, INACTIVITY_14D),
        (ACTIVE, GOODBYE_TIMEOUT),
        (REMIND_LATER, GOODBYE_TIMEOUT),
        (ACTIVE, REMINDER_DUE),
        (GOODBYE_SENT, REMINDER_DUE),
        (ACTIVE, REMIND_LATER_TRIGGER),
        (DORMANT, REMIND_LATER_TRIGGER),
    ],
)
def test_a_trigger_not_allowed_from_the_state_is_refused_with_a_clear_error(state, trigger):
    with pytest.raises(InvalidState, match=f"trigger '{trigger}' is not allowed from state"):
        next_state(state, trigger)


def test_an_unknown_trigger_is_bad_input():
    with pytest.raises(InvalidInput, match="unknown trigger 'wake_up'"):
        next_state(ACTIVE, "wake_up")


def test_every_transition_leads_to_a_known_state():
    assert {to for to in TRANSITIONS.values()} <= set(STATES)


def test_the_goodbye_expires_after_the_goodbye_timeout():
    assert state_changes(INACTIVITY_14D, NOW, THRESHOLDS) == {
        "goodbye_expires_at": NOW + timedelta(hours=48),
        "remind_at": None,
    }


def test_activity_sets_last_activity_and_clears_the_timers():
    assert state_changes(USER_ACTIVITY, NOW, THRESHOLDS) == {
        "last_activity_at": NOW,
        "goodbye_expires_at": None,
        "remind_at": None,
    }


@pytest.mark.parametrize("trigger", [GOODBYE_TIMEOUT, REMINDER_DUE, OPT_OUT])
def test_going_dormant_or_opting_out_clears_the_timers(trigger):
    assert state_changes(trigger, NOW, THRESHOLDS) == {
        "goodbye_expires_at": None,
        "remind_at": None,
    }


def test_remind_later_needs_a_time_in_the_future():
    later = NOW + timedelta(days=7)
    assert state_changes(REMIND_LATER_TRIGGER, NOW, THRESHOLDS, later)["remind_at"] == later
    with pytest.raises(InvalidInput, match="needs the time"):
        state_changes(REMIND_LATER_TRIGGER, NOW, THRESHOLDS)
    with pytest.raises(InvalidInput, match="not in the future"):
        state_changes(REMIND_LATER_TRIGGER, NOW, THRESHOLDS, NOW)


def test_activity_of_an_active_user_is_not_audited_but_every_change_and_opt_out_is():
    assert not is_audited(ACTIVE, ACTIVE, USER_ACTIVITY)
    assert is_audited(DORMANT, ACTIVE, USER_ACTIVITY)
    assert is_audited(ACTIVE, ACTIVE, OPT_OUT)


class Row:
    """Stands in for an engagement state row."""

    def __init__(self, state, last_activity_at=None, goodbye_expires_at=None, remind_at=None):
        self.state = state
        self.last_activity_at = last_activity_at
        self.goodbye_expires_at = goodbye_expires_at
        self.remind_at = remind_at


@pytest.mark.parametrize(
    ("inactive_for", "due"),
    [
        (timedelta(days=13), False),
        (timedelta(days=14) - timedelta(seconds=1), False),
        (timedelta(days=14), True),
        (timedelta(days=15), True),
    ],
)
def test_inactivity_is_due_from_14_days_exactly(inactive_for, due):
    row = Row(ACTIVE, last_activity_at=NOW - inactive_for)
    assert INACTIVITY.is_due(row, NOW, THRESHOLDS) is due


def test_inactivity_is_due_only_for_active_users():
    row = Row(GOODBYE_SENT, last_activity_at=NOW - timedelta(days=30))
    assert not INACTIVITY.is_due(row, NOW, THRESHOLDS)


@pytest.mark.parametrize(
    ("after", "due"), [(timedelta(hours=47), False), (timedelta(hours=48), True)]
)
def test_the_goodbye_times_out_at_48_hours_exactly(after, due):
    sent_at = NOW - after
    row = Row(GOODBYE_SENT, goodbye_expires_at=sent_at + THRESHOLDS.goodbye_timeout)
    assert TIMEOUT.is_due(row, NOW, THRESHOLDS) is due


def test_a_reminder_is_due_at_its_time_not_before():
    assert REMINDER.is_due(Row(REMIND_LATER, remind_at=NOW), NOW, THRESHOLDS)
    assert not REMINDER.is_due(
        Row(REMIND_LATER, remind_at=NOW + timedelta(minutes=1)), NOW, THRESHOLDS
    )
    assert not REMINDER.is_due(Row(REMIND_LATER, remind_at=None), NOW, THRESHOLDS)


def test_thresholds_come_from_the_settings(env):
    env.setenv("OUTREACH_INACTIVITY_DAYS", "7")
    env.setenv("OUTREACH_GOODBYE_TIMEOUT_HOURS", "24")
    assert Thresholds.from_settings() == Thresholds(timedelta(days=7), timedelta(hours=24))


def test_an_unknown_check_is_bad_input():
    with pytest.raises(InvalidInput, match="unknown check 'weekly'"):
        get_check("weekly")
