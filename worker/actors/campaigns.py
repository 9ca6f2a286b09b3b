"""Actors that run campaign batches."""

from __future__ import annotations

from typing import Any

import dramatiq

from storage.errors import OutreachError
from worker.campaigns import batches
from worker.campaigns import outcomes as _outcomes  # noqa: F401  (registers the outcome handler)

# An unexpected error (database down, a bug) is retried this many times, then the campaign is
# marked failed with the error kept...
BATCH_MAX_RETRIES = 5
# ...starting 10 s apart...
BATCH_MIN_BACKOFF_MS = 10_000
# ...and never more than 10 min apart, so a broken run is failed within the hour.
BATCH_MAX_BACKOFF_MS = 600_000
# Materialising a million recipients takes well under a minute; this only stops a hung thread.
BATCH_TIME_LIMIT_MS = 15 * 60_000


@dramatiq.actor(
    queue_name="campaign",
    max_retries=BATCH_MAX_RETRIES,
    min_backoff=BATCH_MIN_BACKOFF_MS,
    max_backoff=BATCH_MAX_BACKOFF_MS,
    time_limit=BATCH_TIME_LIMIT_MS,
    throws=(OutreachError,),
    on_retry_exhausted="campaign_batch_exhausted",
    log_context=("campaign_id", "batch_number"),
)
def run_campaign_batch(campaign_id: int, batch_number: int) -> None:
    batches.run_batch(int(campaign_id), int(batch_number))


@dramatiq.actor(queue_name="campaign", max_retries=BATCH_MAX_RETRIES)
def campaign_batch_exhausted(message: dict[str, Any], info: dict[str, Any]) -> None:
    """Retries ran out: the campaign is failed, the error kept; the message is dead-lettered."""
    campaign_id = int(message["args"][0])
    traceback = message.get("options", {}).get("traceback") or ""
    last_line = traceback.strip().splitlines()[-1] if traceback.strip() else "unknown error"
    batches.mark_failed(campaign_id, last_line)
