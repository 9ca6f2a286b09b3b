"""Actor of what comes back in: one message per stored inbound event, by its id only."""

from __future__ import annotations

from typing import Any

import dramatiq

from worker.inbound import handle

# A database hiccup is worth a few more tries...
INBOUND_MAX_RETRIES = 8
# ...starting half a second apart...
INBOUND_MIN_BACKOFF_MS = 500
# ...and at most a minute apart: a reply is heard within minutes even after an outage.
INBOUND_MAX_BACKOFF_MS = 60_000
# One event is a handful of queries; this only stops a hung thread.
INBOUND_TIME_LIMIT_MS = 60_000


@dramatiq.actor(
    queue_name="inbound",
    max_retries=INBOUND_MAX_RETRIES,
    min_backoff=INBOUND_MIN_BACKOFF_MS,
    max_backoff=INBOUND_MAX_BACKOFF_MS,
    time_limit=INBOUND_TIME_LIMIT_MS,
    on_retry_exhausted="inbound_event_exhausted",
    log_context=("event_id",),
)
def handle_inbound_event(event_id: int) -> None:
    handle.handle_event(int(event_id))


@dramatiq.actor(queue_name="inbound", max_retries=INBOUND_MAX_RETRIES)
def inbound_event_exhausted(message: dict[str, Any], info: dict[str, Any]) -> None:
    """Retries ran out: the event is marked with the last error (the message is dead-lettered)."""
    (event_id,) = message["args"]
    traceback = message.get("options", {}).get("traceback") or ""
    last_line = traceback.strip().splitlines()[-1] if traceback.strip() else "unknown error"
    handle.give_up(int(event_id), last_line)
