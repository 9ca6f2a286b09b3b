"""Inbound fixtures: an account that wrote to a member and to a hunt's ad owner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from storage.models import Account, EngagementState, OutboxMessage, User, UserProfile
from storage.models.engagement import ACTIVE
from storage.models.outbox import SENT
from tests.inbound import waha
from worker.inbound.events import record_waha
from worker.inbound.handle import handle_event


@dataclass
class Conversation:
    account_id: int
    user_id: int
    outbox_id: int


def sent_row(account_id: int, recipient: str, key: str, now: Any, **values: Any) -> OutboxMessage:
    """A message we sent to `recipient` for the account (what an inbound reply answers)."""
    from storage.models.consent import normalise_address

    return OutboxMessage.create(
        idempotency_key=key,
        channel="whatsapp",
        recipient=recipient,
        body="hello",
        source="engagement",
        status=SENT,
        attempts=1,
        created_at=now,
        enqueued_at=now,
        finished_at=now,
        account_id=account_id,
        address=normalise_address(recipient),
        **values,
    )


def make_member(account: Account, now: Any, *, locale: str = "en", state: str = ACTIVE) -> int:
    user = User.create(account=account, name="Ana", phone="+33612345678", created_at=now)
    UserProfile.create(user=user, locale=locale, whatsapp_jid=waha.MEMBER_JID, created_at=now)
    EngagementState.create(user=user, state=state, last_activity_at=now, updated_at=now)
    return int(user.id)


@pytest.fixture
def conversation(db: str, clock: Any) -> Conversation:
    """Given an account whose goodbye-like message went to a member on WhatsApp."""
    account = Account.create(name="Acme", created_at=clock.now())
    user_id = make_member(account, clock.now())
    row = sent_row(
        account.id, waha.MEMBER_JID, "greeting-1", clock.now(), provider_message_id="true_1"
    )
    return Conversation(account.id, user_id, row.id)


def deliver(body: bytes) -> tuple[int | None, str | None]:
    """The web process's part (store once) and then the worker's part (handle), in one go."""
    event_id = record_waha(body)
    return event_id, handle_event(event_id) if event_id is not None else None
