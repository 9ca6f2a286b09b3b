"""Inbound events: each stored once, keyed by the provider's own id, then handed to an actor.

Only the event's row id travels through Redis; what the person wrote stays in the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from storage import clock
from storage.db import database
from storage.errors import InvalidInput
from storage.models.consent import RECEIVED, WAHA, InboundEvent

# Events still `received` this long after they came in are enqueued again by the relay.
RELAY_AFTER_SECONDS = 60
# Events the relay enqueues per page.
RELAY_PAGE = 1000
# The kinds of WAHA event this project acts on; any other is stored and ignored.
WAHA_MESSAGE = "message"
WAHA_ACK = "message.ack"


@dataclass(frozen=True)
class Identity:
    """What makes an event itself: a second delivery of it has the same identity."""

    kind: str
    external_id: str


def waha_identity(event: Any) -> Identity:
    """The identity of a WAHA webhook body (already parsed JSON); InvalidInput when it has none.

    A message is itself by its message id (WAHA's retries and its `message.any` twin share it);
    an ack by the message it acknowledges and its level; anything else by WAHA's event id.
    """
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise InvalidInput("not a WAHA event: no 'event' name")
    kind = event["event"]
    payload = event.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    message_id = payload.get("id")
    if kind == WAHA_MESSAGE and isinstance(message_id, str) and message_id:
        return Identity(kind, f"message:{message_id}")
    if kind == WAHA_ACK and isinstance(message_id, str) and message_id:
        return Identity(kind, f"ack:{message_id}:{payload.get('ack')}")
    event_id = event.get("id")
    if isinstance(event_id, str) and event_id:
        return Identity(kind[:32], f"event:{event_id}")
    raise InvalidInput(f"WAHA event {kind!r} carries no id")


def record(provider: str, identity: Identity, payload: str) -> int | None:
    """Store the event once; its new id, or None when it was stored already."""
    param = database.obj.param
    table = InboundEvent._meta.table_name
    cursor = database.execute_sql(
        f'INSERT INTO "{table}" (provider, external_id, kind, payload, received_at, status) '
        f"VALUES ({param}, {param}, {param}, {param}, {param}, {param}) "
        "ON CONFLICT (provider, external_id) DO NOTHING RETURNING id",
        (
            provider,
            identity.external_id[:255],
            identity.kind[:32],
            payload,
            InboundEvent.received_at.db_value(clock.now()),
            RECEIVED,
        ),
    )
    row = cursor.fetchone()
    return int(row[0]) if row else None


def record_waha(body: bytes) -> int | None:
    """Parse and store a WAHA webhook body; InvalidInput for one that is not JSON or no event."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"body is not JSON: {exc}") from None
    return record(WAHA, waha_identity(event), body.decode("utf-8"))


def stale_ids(limit: int = RELAY_PAGE) -> list[int]:
    """Events still waiting well after they came in (their enqueue was lost): to enqueue again."""
    before = clock.now() - timedelta(seconds=RELAY_AFTER_SECONDS)
    query = (
        InboundEvent.select(InboundEvent.id)
        .where((InboundEvent.status == RECEIVED) & (InboundEvent.received_at < before))
        .order_by(InboundEvent.id)
        .limit(limit)
    )
    return [row.id for row in query]
