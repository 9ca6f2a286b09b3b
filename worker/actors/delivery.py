"""Actors that deliver outbox rows."""

from __future__ import annotations

from typing import Any

import dramatiq

from storage.errors import OutreachError
from storage.models.outbox import OutboxMessage
from worker import delivery
from worker.delivery_queue import DELIVER_GROUP_ACTOR, DELIVERY_QUEUE, declare_lanes

# Transient failures (timeouts, 5xx, 429) are retried this many times...
DELIVERY_MAX_RETRIES = 8
# ...starting 5 s apart...
DELIVERY_MIN_BACKOFF_MS = 5_000
# ...and never more than 5 min apart, well inside the relay's 15 min window.
DELIVERY_MAX_BACKOFF_MS = 300_000
# A send has a network timeout of its own, and a group hands what is left over to a new message
# after worker.delivery.GROUP_SECONDS; this only stops a hung thread.
DELIVERY_TIME_LIMIT_MS = 180_000

# What both delivery actors share; an unknown id (OutreachError) is not retried.
_DELIVERY_OPTIONS: dict[str, Any] = {
    "queue_name": DELIVERY_QUEUE,
    "max_retries": DELIVERY_MAX_RETRIES,
    "min_backoff": DELIVERY_MIN_BACKOFF_MS,
    "max_backoff": DELIVERY_MAX_BACKOFF_MS,
    "time_limit": DELIVERY_TIME_LIMIT_MS,
    "throws": (OutreachError,),
}


# The accounts' lanes beside the actors' own queue (worker.delivery_queue): workers consume all.
declare_lanes(dramatiq.get_broker())


# Under the name worker.delivery_queue enqueues it by (the same as the function's).
@dramatiq.actor(
    **_DELIVERY_OPTIONS,
    actor_name=DELIVER_GROUP_ACTOR,
    on_retry_exhausted="outbox_deliveries_exhausted",
)
def deliver_outbox_messages(outbox_ids: list[int]) -> None:
    """A group of outbox rows (as queued together); what a retry finds done it skips."""
    delivery.deliver_many([int(outbox_id) for outbox_id in outbox_ids])


@dramatiq.actor(queue_name=DELIVERY_QUEUE, max_retries=DELIVERY_MAX_RETRIES)
def outbox_deliveries_exhausted(message: dict[str, Any], info: dict[str, Any]) -> None:
    """Retries ran out: the group's rows that kept failing are recorded as failed (a row it
    handed over to another message, never tried, is left to that message)."""
    for outbox_id in message["args"][0]:
        reason = exhausted_reason(int(outbox_id), message)
        delivery.mark_exhausted(int(outbox_id), reason, failed_before=True)


# One row per message: how deliveries were enqueued before groups (a dead-lettered one may be
# requeued), and still a way to push one row by hand.
@dramatiq.actor(
    **_DELIVERY_OPTIONS,
    on_retry_exhausted="outbox_delivery_exhausted",
    log_context=("outbox_id",),
)
def deliver_outbox_message(outbox_id: int) -> None:
    delivery.deliver(int(outbox_id))


@dramatiq.actor(queue_name=DELIVERY_QUEUE, max_retries=DELIVERY_MAX_RETRIES)
def outbox_delivery_exhausted(message: dict[str, Any], info: dict[str, Any]) -> None:
    """Retries ran out: record the row as failed (the message itself stays dead-lettered)."""
    outbox_id = int(message["args"][0])
    delivery.mark_exhausted(outbox_id, exhausted_reason(outbox_id, message))


def exhausted_reason(outbox_id: int, message: dict[str, Any]) -> str:
    """Why the last attempt failed: the send error the delivery recorded on the row.

    A traceback's last line is only the tail of a multi-line error (an SMTP or HTTP answer can
    span lines); it is the fallback for a row that never recorded one.
    """
    row = OutboxMessage.get_or_none(OutboxMessage.id == outbox_id)
    if row is not None and row.last_error:
        return str(row.last_error)
    traceback = (message.get("options", {}).get("traceback") or "").strip()
    return traceback.splitlines()[-1] if traceback else "unknown error"
