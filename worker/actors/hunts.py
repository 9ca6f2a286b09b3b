"""The hunt actor: one message per hunt and day (the sweep) or per operator request."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq

from storage.errors import OutreachError
from worker.hunts import outcomes, process

# Imported for its side effect: the handler that settles credits and leads on delivery outcomes.
_OUTCOME_HANDLERS = outcomes

# A database hiccup or a deadlock is worth a few more tries...
HUNT_MAX_RETRIES = 5
# ...starting 5 s apart...
HUNT_MIN_BACKOFF_MS = 5_000
# ...and at most 5 minutes apart, so a failing hunt settles within the hour.
HUNT_MAX_BACKOFF_MS = 300_000
# A run is a few queries per contact and at most the day's limit of contacts.
HUNT_TIME_LIMIT_MS = 600_000
# Deliveries (priority 0) go first among the messages a worker process has fetched.
HUNT_PRIORITY = 10
# Hunts running at once in one worker process (the Procfile's processes have 8 threads): bounds
# the matching queries and contact transactions the database sees from each process.
HUNT_CONCURRENCY_PER_PROCESS = 4

_running = threading.BoundedSemaphore(HUNT_CONCURRENCY_PER_PROCESS)


@dramatiq.actor(
    queue_name="hunt",
    priority=HUNT_PRIORITY,
    max_retries=HUNT_MAX_RETRIES,
    min_backoff=HUNT_MIN_BACKOFF_MS,
    max_backoff=HUNT_MAX_BACKOFF_MS,
    time_limit=HUNT_TIME_LIMIT_MS,
    throws=(OutreachError,),
    on_retry_exhausted="hunt_run_exhausted",
    log_context=("hunt_id", "run_id"),
)
def process_hunt(hunt_id: int, run_id: int | None = None) -> None:
    run = None if run_id is None else int(run_id)
    with _running:
        try:
            process.run_hunt(int(hunt_id), run)
        except OutreachError as exc:
            # Not retried: the message goes to the dead-letter queue, the reason to the run row.
            process.record_failure(int(hunt_id), run, str(exc))
            raise


@dramatiq.actor(
    queue_name="hunt",
    max_retries=HUNT_MAX_RETRIES,
    min_backoff=HUNT_MIN_BACKOFF_MS,
    max_backoff=HUNT_MAX_BACKOFF_MS,
    time_limit=HUNT_TIME_LIMIT_MS,
)
def hunt_run_exhausted(message: dict[str, Any], info: dict[str, Any]) -> None:
    """Retries ran out: the reason goes to the run row (the message itself is dead-lettered)."""
    args = message["args"]
    run_id = args[1] if len(args) > 1 else message.get("kwargs", {}).get("run_id")
    traceback = message.get("options", {}).get("traceback") or ""
    last_line = traceback.strip().splitlines()[-1] if traceback.strip() else "unknown error"
    process.record_failure(int(args[0]), None if run_id is None else int(run_id), last_line)
