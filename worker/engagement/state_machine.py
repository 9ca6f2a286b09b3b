"""The engagement state machine (seed 004): plain rules first, then the one way to apply them.

Every change of a user's engagement state goes through :func:`transition_state`. It reads the
state, asks the plain rules what the trigger does from there, and writes the result with an
update conditional on the version it read: of two concurrent attempts exactly one wins, the
other gets :class:`StateChanged` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from peewee import Field

from storage import clock
from storage.db import database, is_postgres, write_transaction
from storage.errors import InvalidInput, InvalidState, NotFound
from storage.models.engagement import (
    ACTIVE,
    DORMANT,
    GOODBYE_SENT,
    REMIND_LATER,
    STATES,
    EngagementState,
    EngagementTransition,
    UserProfile,
)
from storage.settings import get_settings
from worker.consent.users import STOP as STOP_CAUSE
from worker.consent.users import suppress_users
from worker.engagement import sql

# Triggers fired by the daily job.
INACTIVITY_14D = "inactivity_14d"
GOODBYE_TIMEOUT = "goodbye_timeout"
REMINDER_DUE = "reminder_due"
# Triggers fired by the user (their answers to the goodbye, or any activity).
USER_ACTIVITY = "user_activity"
REMIND_LATER_TRIGGER = "remind_later"
OPT_OUT = "opt_out"
TRIGGERS = (
    INACTIVITY_14D,
    GOODBYE_TIMEOUT,
    REMINDER_DUE,
    USER_ACTIVITY,
    REMIND_LATER_TRIGGER,
    OPT_OUT,
)

# (state, trigger) -> next state. Anything missing is refused.
TRANSITIONS: dict[tuple[str, str], str] = {
    (ACTIVE, INACTIVITY_14D): GOODBYE_SENT,
    (GOODBYE_SENT, GOODBYE_TIMEOUT): DORMANT,
    (GOODBYE_SENT, REMIND_LATER_TRIGGER): REMIND_LATER,
    (REMIND_LATER, REMINDER_DUE): DORMANT,
    **{(state, USER_ACTIVITY): ACTIVE for state in STATES},
    # "Stop": no more re-engagement. A pending goodbye or reminder ends in silence.
    (ACTIVE, OPT_OUT): ACTIVE,
    (GOODBYE_SENT, OPT_OUT): DORMANT,
    (REMIND_LATER, OPT_OUT): DORMANT,
    (DORMANT, OPT_OUT): DORMANT,
}


class ReadState(Protocol):
    """A user's engagement state as read: a row, or any reading with these two values."""

    @property
    def state(self) -> str: ...

    @property
    def version(self) -> int: ...


class StateChanged(InvalidState):
    """The state changed between reading it and writing the transition (a lost race)."""


@dataclass(frozen=True)
class Thresholds:
    inactivity: timedelta
    goodbye_timeout: timedelta

    @classmethod
    def from_settings(cls) -> Thresholds:
        settings = get_settings()
        return cls(
            inactivity=timedelta(days=settings.inactivity_days),
            goodbye_timeout=timedelta(hours=settings.goodbye_timeout_hours),
        )


def validate_trigger(trigger: str) -> str:
    if trigger not in TRIGGERS:
        raise InvalidInput(f"unknown trigger {trigger!r} (expected one of {', '.join(TRIGGERS)})")
    return trigger


def next_state(state: str, trigger: str) -> str:
    """The state `trigger` leads to from `state`; InvalidState when it is not allowed there."""
    validate_trigger(trigger)
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        allowed = sorted(s for (s, t) in TRANSITIONS if t == trigger)
        raise InvalidState(
            f"trigger {trigger!r} is not allowed from state {state!r} "
            f"(only from {', '.join(allowed)})"
        ) from None


def state_changes(
    trigger: str,
    now: datetime,
    thresholds: Thresholds,
    remind_at: datetime | None = None,
) -> dict[str, datetime | None]:
    """The timestamps a trigger sets, besides the state itself."""
    if trigger == INACTIVITY_14D:
        return {"goodbye_expires_at": now + thresholds.goodbye_timeout, "remind_at": None}
    if trigger == REMIND_LATER_TRIGGER:
        if remind_at is None:
            raise InvalidInput("remind_later needs the time to remind the user at")
        if remind_at <= now:
            raise InvalidInput(f"remind_at {remind_at.isoformat()} is not in the future")
        return {"goodbye_expires_at": None, "remind_at": remind_at}
    if trigger == USER_ACTIVITY:
        return {"last_activity_at": now, "goodbye_expires_at": None, "remind_at": None}
    if trigger in (GOODBYE_TIMEOUT, REMINDER_DUE, OPT_OUT):
        # No timer is left pending on a user who is dormant or who said stop.
        return {"goodbye_expires_at": None, "remind_at": None}
    return {}


def is_audited(from_state: str, to_state: str, trigger: str) -> bool:
    """Every change of state is audited, and every opt-out; plain activity of an active user is not
    (it would be one row per message the user sends)."""
    return from_state != to_state or trigger == OPT_OUT


@dataclass(frozen=True)
class Transition:
    user_id: int
    trigger: str
    from_state: str
    to_state: str
    at: datetime
    # What the rows written with it read back (see `also_write`), in their order.
    read_back: tuple[Any, ...] = ()


def joined_transaction() -> AbstractContextManager[object]:
    """Join the caller's transaction (no savepoint round trips), or open a write transaction."""
    return nullcontext() if database.in_transaction() else write_transaction()


def _transaction_for(trigger: str) -> AbstractContextManager[object]:
    """What a transition needs around it to be all or nothing.

    On PostgreSQL the update and its rows are one statement: atomic alone, and part of the
    caller's transaction when there is one, so it opens none (two round trips fewer). SQLite
    writes them one by one, and an opt-out also writes the profile: those need a transaction.
    """
    if trigger != OPT_OUT and is_postgres():
        return nullcontext()
    return joined_transaction()


# The audit row every change of state writes with it.
_AUDIT = sql.Insert(
    EngagementTransition.user,
    EngagementTransition.from_state,
    EngagementTransition.to_state,
    EngagementTransition.trigger,
    EngagementTransition.at,
    EngagementTransition.run,
)


def transition_state(
    user_id: int,
    trigger: str,
    *,
    remind_at: datetime | None = None,
    run_id: int | None = None,
    current: ReadState | None = None,
    from_state: str | None = None,
    due: tuple[Field, datetime] | None = None,
    also_write: Sequence[sql.Row] = (),
) -> Transition:
    """Apply `trigger` to the user's engagement state, or raise and change nothing.

    The update is conditional on what was read: by default the row is read here and the update
    requires its version; `current` is a row the caller has just read (same condition, one
    query less); `from_state` (with `due`, a timestamp column that must still be at or before
    a bound) is a state found by a query, as the daily sweep finds its users, and the update
    requires the row to be in it still. `also_write` are rows written with the transition and
    only if it is applied (the daily run's outcome for the user).
    Raises NotFound (no engagement state), InvalidState (trigger not allowed from the state)
    or StateChanged (the row is no longer what was read: someone else changed it first).
    """
    now = clock.now()
    version: int | None = None
    if from_state is None:
        if current is None:
            current = EngagementState.get_or_none(EngagementState.user == user_id)
            if current is None:
                raise NotFound(f"user {user_id} has no engagement state")
        from_state = str(current.state)
        version = int(current.version)
    to_state = next_state(from_state, trigger)
    changes = {
        "state": to_state,
        "updated_at": now,
        **state_changes(trigger, now, Thresholds.from_settings(), remind_at),
    }
    rows = list(also_write)
    if is_audited(from_state, to_state, trigger):
        rows.insert(0, _AUDIT.row(user_id, from_state, to_state, trigger, now, run_id))
    with _transaction_for(trigger):
        applied = sql.update_state(
            user_id,
            changes,
            version=version,
            from_state=from_state if version is None else None,
            due=due,
            rows=rows,
        )
        if not applied.changed:
            raise StateChanged(
                f"user {user_id}'s engagement state changed while {trigger!r} was being applied"
            )
        if trigger == OPT_OUT:
            _record_opt_out(user_id, now)
    return Transition(user_id, trigger, from_state, to_state, now, applied.read_back)


def _record_opt_out(user_id: int, now: datetime) -> None:
    """The profile's flag, and (consent wins) a suppression of every address of the user in
    their account, in the transition's transaction: no kind of work writes to them again."""
    suppress_users([user_id], STOP_CAUSE)
    opted = (
        UserProfile.update(reengagement_opt_out=True).where(UserProfile.user == user_id).execute()
    )
    if not opted:
        UserProfile.insert(user=user_id, reengagement_opt_out=True, created_at=now).execute()
