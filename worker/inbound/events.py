"""Inbound events: each stored once, keyed by the provider's own id, then handed to an actor.

Only the event's row id travels through Redis; what the person wrote stays in the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
# The longest provider id kept (the column's size).
EXTERNAL_ID_MAX = 255


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
    if "\x00" in str(message_id) or "\x00" in str(event.get("id")):
        raise InvalidInput("WAHA event id holds a NUL character")
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
    return record_many(provider, [(identity, payload)]).get(identity.external_id[:EXTERNAL_ID_MAX])


def record_many(provider: str, events: Sequence[tuple[Identity, str]]) -> dict[str, int]:
    """Store each event once, in one statement; the new ids by external id.

    An event stored before, or twice in `events`, is not in the answer (the first of twins
    is). On PostgreSQL and SQLite alike, `ON CONFLICT DO NOTHING` skips a row whose key is
    already there, written by an earlier statement or earlier in this one.
    """
    if not events:
        return {}
    param = database.obj.param
    table = InboundEvent._meta.table_name
    received_at = InboundEvent.received_at.db_value(clock.now())
    values: list[Any] = []
    # In the order of their keys: two batches written at once that share events take their
    # keys' locks in the same order, so neither waits on the other for good.
    for identity, payload in sorted(events, key=lambda event: event[0].external_id):
        values += (
            provider,
            identity.external_id[:EXTERNAL_ID_MAX],
            identity.kind[:32],
            payload,
            received_at,
            RECEIVED,
        )
    row = f"({', '.join([param] * 6)})"
    cursor = database.execute_sql(
        f'INSERT INTO "{table}" (provider, external_id, kind, payload, received_at, status) '
        f"VALUES {', '.join([row] * len(events))} "
        "ON CONFLICT (provider, external_id) DO NOTHING RETURNING id, external_id",
        values,
    )
    return {str(external_id): int(event_id) for event_id, external_id in cursor.fetchall()}


def parse_waha(body: bytes) -> tuple[Identity, str]:
    """A WAHA webhook body's identity and text; InvalidInput for one not JSON or no event."""
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"body is not JSON: {exc}") from None
    return waha_identity(event), body.decode("utf-8")


def record_waha(body: bytes) -> int | None:
    """Parse and store a WAHA webhook body; InvalidInput for one that is not JSON or no event."""
    identity, payload = parse_waha(body)
    return record(WAHA, identity, payload)


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
