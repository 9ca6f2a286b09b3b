"""Users entering engagement (profile and state rows), and the activity that keeps them active."""

from __future__ import annotations

from datetime import datetime

from storage import clock
from storage.db import write_transaction
from storage.errors import InvalidInput, NotFound
from storage.models.accounts import User
from storage.models.engagement import (
    ACTIVE,
    DESTINATIONS,
    EngagementState,
    UserProfile,
)
from worker.engagement.state_machine import (
    USER_ACTIVITY,
    StateChanged,
    Transition,
    transition_state,
)

# Activity is allowed from every state, so a lost race is simply tried again on the new state.
ACTIVITY_ATTEMPTS = 3


def _require_user(user_id: int) -> None:
    if not User.select().where(User.id == user_id).exists():
        raise NotFound(f"user {user_id} does not exist")


def enrol(
    user_id: int,
    *,
    locale: str = "en",
    preferred_destination: str = "individual",
    whatsapp_jid: str | None = None,
    group_jid: str | None = None,
    last_activity_at: datetime | None = None,
) -> EngagementState:
    """Give a user a profile and an active engagement state (both kept if they exist)."""
    if preferred_destination not in DESTINATIONS:
        raise InvalidInput(
            f"preferred destination must be one of {', '.join(DESTINATIONS)}, "
            f"not {preferred_destination!r}"
        )
    _require_user(user_id)
    now = clock.now()
    with write_transaction():
        UserProfile.insert(
            user=user_id,
            locale=locale,
            preferred_destination=preferred_destination,
            whatsapp_jid=whatsapp_jid,
            group_jid=group_jid,
            created_at=now,
        ).on_conflict_ignore().as_rowcount().execute()
        EngagementState.insert(
            user=user_id, state=ACTIVE, last_activity_at=last_activity_at or now, updated_at=now
        ).on_conflict_ignore().as_rowcount().execute()
    state: EngagementState = EngagementState.get(EngagementState.user == user_id)
    return state


def record_activity(user_id: int) -> Transition:
    """The user did something: whatever their state, they are active again from now."""
    _require_user(user_id)
    if not EngagementState.select().where(EngagementState.user == user_id).exists():
        enrol(user_id)
    for attempt in range(1, ACTIVITY_ATTEMPTS + 1):
        try:
            return transition_state(user_id, USER_ACTIVITY)
        except StateChanged:
            if attempt == ACTIVITY_ATTEMPTS:
                raise
    raise AssertionError("unreachable")
