"""Events stored but never handled (their enqueue was lost with Redis): enqueued again.

Handling is once per event whatever the number of messages, so enqueueing again is safe.
"""

from __future__ import annotations

from worker.inbound.events import stale_ids


def requeue_stale() -> int:
    """Enqueue every event still waiting; returns how many."""
    from worker.actors.inbound import handle_inbound_event
    from worker.enqueue import enqueue_many

    ids = stale_ids()
    return enqueue_many(handle_inbound_event.message(event_id) for event_id in ids)
