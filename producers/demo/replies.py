"""The demo's day-2 replies: people write back, through the same handler as WAHA's webhook.

One member answers "2" (remind me later) to the goodbye they got on day 1, and one ad owner a
hunt contacted writes STOP. Each is stored as a WAHA event and handled as a worker would.
"""

from __future__ import annotations

import json
from typing import Any

from peewee import fn

from storage.models.consent import InboundEvent, Suppression
from storage.models.engagement import GOODBYE_SENT, EngagementState
from storage.models.hunts import ContactedAd, Lead
from storage.models.outbox import CONSENT_SOURCE, OutboxMessage
from worker.engagement.process import OUTBOX_SOURCE as ENGAGEMENT_SOURCE
from worker.inbound.events import record_waha
from worker.inbound.handle import handle_event

# What the demo's two people write back.
MEMBER_ANSWER = "2"
OWNER_ANSWER = "STOP"


def _waha_message(recipient: str, text: str, number: int) -> bytes:
    chat = recipient if "@" in recipient else f"{recipient.lstrip('+')}@c.us"
    payload = {"id": f"false_{chat}_demo{number}", "from": chat, "body": text, "fromMe": False}
    return json.dumps({"event": "message", "session": "default", "payload": payload}).encode()


def _reply(row: OutboxMessage | None, text: str, number: int, who: str) -> dict[str, Any] | None:
    if row is None:
        return None
    event_id = record_waha(_waha_message(row.recipient, text, number))
    outcome = handle_event(event_id) if event_id is not None else None
    return {"who": who, "text": text, "event_id": event_id, "outcome": outcome}


def _member_goodbye() -> OutboxMessage | None:
    """The goodbye of a member who has not answered it yet."""
    waiting = EngagementState.select(EngagementState.user).where(
        EngagementState.state == GOODBYE_SENT
    )
    for row in (
        OutboxMessage.select()
        .where((OutboxMessage.source == ENGAGEMENT_SOURCE) & (OutboxMessage.status == "sent"))
        .order_by(OutboxMessage.id)
    ):
        if row.recipient.endswith("@g.us"):
            continue  # a goodbye posted in a group: the answer would come from its author
        # The goodbye's key starts with its user's id (worker.engagement.process.goodbye_key).
        user_id = int(row.idempotency_key.split(":", 1)[0])
        if waiting.where(EngagementState.user == user_id).exists():
            return row
    return None


def _owner_contact() -> OutboxMessage | None:
    """A hunt's first message to an ad owner on WhatsApp."""
    contact = (
        ContactedAd.select(ContactedAd.outbox_message)
        .where(ContactedAd.channel == "whatsapp")
        .order_by(ContactedAd.id)
        .first()
    )
    return OutboxMessage.get_by_id(contact.outbox_message_id) if contact else None


def simulate_replies() -> list[dict[str, Any]]:
    """Both replies, handled; what each did."""
    replies = [
        _reply(_member_goodbye(), MEMBER_ANSWER, 1, "member, to the goodbye"),
        _reply(_owner_contact(), OWNER_ANSWER, 2, "ad owner, to a hunt's message"),
    ]
    return [reply for reply in replies if reply is not None]


def consent_summary() -> dict[str, Any]:
    """What came back in over the demo, and what it changed."""
    by_stage: Any = (
        Lead.select(Lead.stage, fn.COUNT(Lead.id)).group_by(Lead.stage).order_by(Lead.stage)
    )
    return {
        "inbound_events": InboundEvent.select().count(),
        "suppressed_addresses": Suppression.select().count(),
        "stop_confirmations": OutboxMessage.select()
        .where(OutboxMessage.source == CONSENT_SOURCE)
        .count(),
        "leads_by_stage": {str(stage): int(count) for stage, count in by_stage.tuples()},
    }
