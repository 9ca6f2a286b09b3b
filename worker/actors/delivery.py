"""Actors that deliver outbox rows."""

from __future__ import annotations

from typing import Any

import dramatiq

from storage.errors import OutreachError
from worker import delivery

# Transient failures (timeouts, 5xx, 429) are retried this many times...
DELIVERY_MAX_RETRIES = 8
# ...starting 5 s apart...
DELIVERY_MIN_BACKOFF_MS = 5_000
# ...and never more than 5 min apart, well inside the relay's 15 min window.
DELIVERY_MAX_BACKOFF_MS = 300_000
# A send has a network timeout of its own; this only stops a hung thread.
DELIVERY_TIME_LIMIT_MS = 120_000


@dramatiq.actor(
    queue_name="delivery",
    max_retries=DELIVERY_MAX_RETRIES,
    min_backoff=DELIVERY_MIN_BACKOFF_MS,
    max_backoff=DELIVERY_MAX_BACKOFF_MS,
    time_limit=DELIVERY_TIME_LIMIT_MS,
    throws=(OutreachError,),
    on_retry_exhausted="outbox_delivery_exhausted",
    log_context=("outbox_id",),
)
def deliver_outbox_message(outbox_id: int) -> None:
    delivery.deliver(int(outbox_id))


@dramatiq.actor(queue_name="delivery", max_retries=DELIVERY_MAX_RETRIES)
def outbox_delivery_exhausted(message: dict[str, Any], info: dict[str, Any]) -> None:
    """Retries ran out: record the row as failed (the message itself stays dead-lettered)."""
    outbox_id = int(message["args"][0])
    traceback = message.get("options", {}).get("traceback") or ""
    last_line = traceback.strip().splitlines()[-1] if traceback.strip() else "unknown error"
    delivery.mark_exhausted(outbox_id, last_line)
