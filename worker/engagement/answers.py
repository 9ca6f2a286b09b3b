"""A user's answer to the goodbye: come back, remind me later, or stop.

The goodbye offers these three choices; each answer is one trigger of the state machine, applied
through :func:`transition_state` like every other change. An answer the user's state does not
allow (a reminder asked for while active) is refused and changes nothing.
"""

from __future__ import annotations

from datetime import timedelta

from storage import clock
from storage.errors import InvalidInput, InvalidState, NotFound
from storage.models.accounts import User
from storage.models.engagement import EngagementState
from worker.engagement.state_machine import (
    OPT_OUT,
    REMIND_LATER_TRIGGER,
    TRANSITIONS,
    USER_ACTIVITY,
    StateChanged,
    Transition,
    transition_state,
)
from worker.engagement.users import enrol, record_activity

COME_BACK = "come-back"
REMIND_LATER = "remind-later"
STOP = "stop"
# Answer -> the trigger it fires.
ANSWERS = {COME_BACK: USER_ACTIVITY, REMIND_LATER: REMIND_LATER_TRIGGER, STOP: OPT_OUT}

# "Remind me later" without a delay: a week, long enough not to feel like the goodbye again.
DEFAULT_REMIND_IN_DAYS = 7
# The longest delay accepted; a longer one is more likely a typo than a wish.
MAX_REMIND_IN_DAYS = 365
# A lost race is tried again on the state as it now is (which may then refuse the answer).
ANSWER_ATTEMPTS = 3


def _validate(answer: str, remind_in_days: int | None) -> None:
    if answer not in ANSWERS:
        raise InvalidInput(f"unknown answer {answer!r} (expected one of {', '.join(ANSWERS)})")
    if remind_in_days is None:
        return
    if answer != REMIND_LATER:
        raise InvalidInput(f"--remind-in-days goes with the answer {REMIND_LATER!r} only")
    if not 1 <= remind_in_days <= MAX_REMIND_IN_DAYS:
        raise InvalidInput(
            f"remind in days must be from 1 to {MAX_REMIND_IN_DAYS}, not {remind_in_days}"
        )


def _allowed_from(trigger: str) -> list[str]:
    return sorted(state for state, t in TRANSITIONS if t == trigger)


def answer_goodbye(user_id: int, answer: str, remind_in_days: int | None = None) -> Transition:
    """Apply the user's answer; raises (and changes nothing) on an answer their state refuses.

    `come-back` makes the user active from any state; `remind-later` (only after a goodbye)
    moves them to `remind_later` until now + `remind_in_days` (default 7); `stop` opts them out
    of re-engagement, ending a pending goodbye or reminder in silence.
    """
    _validate(answer, remind_in_days)
    if not User.select().where(User.id == user_id).exists():
        raise NotFound(f"user {user_id} does not exist")
    if answer == COME_BACK:
        return record_activity(user_id)
    trigger = ANSWERS[answer]
    remind_at = None
    if answer == REMIND_LATER:
        remind_at = clock.now() + timedelta(days=remind_in_days or DEFAULT_REMIND_IN_DAYS)
    for attempt in range(1, ANSWER_ATTEMPTS + 1):
        current = EngagementState.get_or_none(EngagementState.user == user_id)
        if current is None:
            if answer != STOP:
                raise InvalidState(
                    f"user {user_id} was never sent a goodbye: {answer!r} answers one "
                    f"(only from {', '.join(_allowed_from(trigger))})"
                )
            # "Stop" from a user the job never saw is still honoured: enrol, then opt out.
            current = enrol(user_id)
        if (current.state, trigger) not in TRANSITIONS:
            raise InvalidState(
                f"user {user_id} is {current.state}: {answer!r} is allowed only from "
                f"{', '.join(_allowed_from(trigger))}"
            )
        try:
            return transition_state(user_id, trigger, remind_at=remind_at, current=current)
        except StateChanged:
            if attempt == ANSWER_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
