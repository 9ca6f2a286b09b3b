"""Adapters that give every scheduled job the same shape: ``job(fire_time) -> dict``."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

# Rows the relay repairs per page...
RELAY_PAGE = 1000
# ...and pages per fire at most: a Redis restart can lose far more than one page of deliveries,
# and a minute per page would hold them back for hours. The bound keeps one fire short.
RELAY_MAX_PAGES = 100


def outbox_relay(fire_time: datetime) -> dict[str, Any]:
    """Repair what a crash left in the outbox, page after page until nothing is left (the relay
    does not need the fire time). A repaired row is not stale any more, so each page is new."""
    from worker.inbound.relay import requeue_stale
    from worker.outbox_relay import relay

    total: Counter[str] = Counter({"requeued": 0, "unknown": 0, "resent": 0})
    for _ in range(RELAY_MAX_PAGES):
        counts = relay(limit=RELAY_PAGE)
        total.update(counts)
        # Until a page repairs nothing (not "until a page is short": a row a worker takes
        # between the relay's read and its update makes a full page look short).
        if not any(counts.values()):
            break
    # Inbound events whose enqueue was lost ride on the same fire (one page; they are few).
    total["inbound_requeued"] = requeue_stale()
    return dict(total)
