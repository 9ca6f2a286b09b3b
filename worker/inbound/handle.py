"""Apply one stored inbound event, once: the event's row is claimed in the transaction that
does what it says, so a second delivery (or two at once) finds it handled and does nothing.
"""

from __future__ import annotations

import json
from typing import Any

from storage import clock
from storage.db import write_transaction
from storage.models.consent import (
    FAILED,
    HANDLED,
    IGNORED,
    OPT_OUT,
    RECEIVED,
    WAHA,
    InboundEvent,
    normalise_address,
)
from storage.models.outbox import CONSENT_SOURCE, OutboxMessage
from worker.consent.suppression import suppress
from worker.inbound import conversations, replies
from worker.inbound.events import WAHA_ACK, WAHA_MESSAGE
from worker.logging import get_logger
from worker.outbox import queue_message

log = get_logger("outreach.inbound")

# The channel WAHA events come in on, and the one a stop's confirmation goes back on.
WHATSAPP = "whatsapp"
# WhatsApp group ids end so; a group is not a person and never answers for one.
GROUP_SUFFIX = "@g.us"
# The ack levels WAHA sends: -1 error, 1 server, 2 device (delivered), 3 read, 4 played.
ACK_DELIVERED = 2
ACK_READ = 3
ACK_ERROR = -1


def handle_event(event_id: int) -> str | None:
    """Apply the event if nobody has; its outcome, or None when it was handled already."""
    with write_transaction():
        now = clock.now()
        claimed = (
            InboundEvent.update(status=HANDLED, handled_at=now)
            .where((InboundEvent.id == event_id) & (InboundEvent.status == RECEIVED))
            .execute()
        )
        if not claimed:
            return None
        event = InboundEvent.get_by_id(event_id)
        status, outcome = _apply(event)
        InboundEvent.update(status=status, outcome=outcome).where(
            InboundEvent.id == event_id
        ).execute()
    log.info("inbound.handled", event_id=event_id, kind=event.kind, outcome=outcome)
    return outcome


def give_up(event_id: int, error: str) -> None:
    """Retries ran out: the event is kept, marked, and never handled half-way."""
    InboundEvent.update(status=FAILED, outcome=error[:500]).where(
        (InboundEvent.id == event_id) & (InboundEvent.status == RECEIVED)
    ).execute()


def _apply(event: InboundEvent) -> tuple[str, str]:
    if event.provider != WAHA:
        return IGNORED, f"no handler for provider {event.provider!r}"
    body = json.loads(event.payload)
    payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
    if event.kind == WAHA_MESSAGE:
        return _on_message(event.id, payload)
    if event.kind == WAHA_ACK:
        return _on_ack(payload)
    return IGNORED, f"event {event.kind!r} is not acted on"


def _on_message(event_id: int, payload: dict[str, Any]) -> tuple[str, str]:
    if payload.get("fromMe"):
        return IGNORED, "our own message"
    sender = payload.get("from")
    if isinstance(sender, str) and sender.endswith(GROUP_SUFFIX):
        # In a group, `from` is the group and `participant` the person who wrote.
        sender = payload.get("participant")
    text = payload.get("body")
    if not isinstance(sender, str) or not isinstance(text, str):
        return IGNORED, "no sender or no text"
    address = normalise_address(sender)
    conversation = conversations.last_sent_to(address)
    if conversation is None:
        return IGNORED, "unknown sender"
    account_id = conversation.account_id
    assert account_id is not None  # last_sent_to reads rows of an account only
    member = conversations.member(account_id, address)
    if replies.is_stop(text):
        _stop(event_id, account_id, sender, address, member)
        return HANDLED, "stop"
    outcomes = []
    if conversations.hunt_reply(event_id, account_id, address, text):
        outcomes.append("lead replied")
    if member is not None:
        outcomes.append(conversations.member_reply(member, text))
    if not outcomes:
        return IGNORED, "no rule for this sender"
    return HANDLED, "; ".join(outcomes)


def _stop(
    event_id: int,
    account_id: int,
    sender: str,
    address: str,
    member: conversations.Member | None,
) -> None:
    """Suppressed first, then the member's engagement stopped, then one confirmation: the last
    message the address ever gets (its key is the address's, so a second STOP sends nothing)."""
    suppress(account_id, WHATSAPP, address, OPT_OUT, f"{WAHA}:event:{event_id}")
    if member is not None:
        conversations.stop_member(member)
    queue_message(
        f"consent:stop:{account_id}:{WHATSAPP}:{address}",
        WHATSAPP,
        sender,
        replies.stop_confirmation(member.locale if member else None),
        source=CONSENT_SOURCE,
        account_id=account_id,
    )


def _on_ack(payload: dict[str, Any]) -> tuple[str, str]:
    level = payload.get("ack")
    message_id = payload.get("id")
    if not isinstance(level, int) or not isinstance(message_id, str):
        return IGNORED, "malformed ack"
    row = OutboxMessage.get_or_none(OutboxMessage.provider_message_id == message_id)
    if row is None:
        return IGNORED, "ack for a message we do not know"
    now = clock.now()
    changes: dict[Any, Any] = {}
    if level == ACK_ERROR:
        if row.ack is None:
            changes[OutboxMessage.ack] = ACK_ERROR
    elif row.ack is None or level > row.ack:
        changes[OutboxMessage.ack] = level
    if level >= ACK_DELIVERED and row.delivered_at is None:
        changes[OutboxMessage.delivered_at] = now
    if level >= ACK_READ and row.read_at is None:
        changes[OutboxMessage.read_at] = now
    if changes:
        OutboxMessage.update(changes).where(OutboxMessage.id == row.id).execute()
    return HANDLED, f"ack {level}"
