"""Actors of the daily engagement run: one message per user and check."""

from __future__ import annotations

from typing import Any

import dramatiq

from storage.errors import OutreachError
from worker.engagement import process, runs

# A database hiccup is worth a few more tries...
ENGAGEMENT_MAX_RETRIES = 5
# ...starting 1 s apart...
ENGAGEMENT_MIN_BACKOFF_MS = 1_000
# ...and at most a minute apart, so a run ends within minutes either way.
ENGAGEMENT_MAX_BACKOFF_MS = 60_000
# One user is a handful of queries; this only stops a hung thread.
ENGAGEMENT_TIME_LIMIT_MS = 60_000
# A run is counted again at most this often (less often while many users have no outcome yet)
# until every enqueued user has an outcome.
WATCH_INTERVAL_MS = 250


@dramatiq.actor(
    queue_name="engagement",
    max_retries=ENGAGEMENT_MAX_RETRIES,
    min_backoff=ENGAGEMENT_MIN_BACKOFF_MS,
    max_backoff=ENGAGEMENT_MAX_BACKOFF_MS,
    time_limit=ENGAGEMENT_TIME_LIMIT_MS,
    throws=(OutreachError,),
    on_retry_exhausted="engagement_user_exhausted",
    log_context=("run_id", "user_id", "check_type"),
)
def process_engagement_user(run_id: int, user_id: int, check_type: str) -> None:
    process.process_user(int(run_id), int(user_id), str(check_type))


@dramatiq.actor(
    queue_name="engagement",
    max_retries=ENGAGEMENT_MAX_RETRIES,
    min_backoff=ENGAGEMENT_MIN_BACKOFF_MS,
    max_backoff=ENGAGEMENT_MAX_BACKOFF_MS,
    time_limit=ENGAGEMENT_TIME_LIMIT_MS,
)
def engagement_user_exhausted(message: dict[str, Any], info: dict[str, Any]) -> None:
    """Retries ran out: the user is counted as failed in the run (the message is dead-lettered)."""
    run_id, user_id, check_type = message["args"]
    traceback = message.get("options", {}).get("traceback") or ""
    last_line = traceback.strip().splitlines()[-1] if traceback.strip() else "unknown error"
    process.record_failure(int(run_id), int(user_id), str(check_type), last_line)


@dramatiq.actor(
    queue_name="engagement",
    max_retries=ENGAGEMENT_MAX_RETRIES,
    min_backoff=ENGAGEMENT_MIN_BACKOFF_MS,
    max_backoff=ENGAGEMENT_MAX_BACKOFF_MS,
    time_limit=ENGAGEMENT_TIME_LIMIT_MS,
    throws=(OutreachError,),
    log_context=("run_id",),
)
def watch_engagement_run(run_id: int) -> None:
    """Finish the run once every enqueued user has an outcome; until then, look again later."""
    delay = runs.watch_again_in(int(run_id), WATCH_INTERVAL_MS)
    if delay is not None:
        watch_engagement_run.send_with_options(args=(int(run_id),), delay=delay)
