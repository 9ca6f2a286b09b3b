"""The outbox relay: what a crash left behind is enqueued again or settled (invariant 2).

The scheduler runs it every minute (producers.scheduler.jobs.outbox_relay).
"""

from __future__ import annotations

from datetime import timedelta

from storage import clock
from storage.db import database
from storage.models.outbox import QUEUED, OutboxMessage
from storage.settings import get_settings
from worker.delivery import recover_stale_sending
from worker.delivery_queue import enqueue_rows
from worker.logging import get_logger

log = get_logger("outreach.outbox")


def relay(
    relay_after: timedelta | None = None,
    sending_stale: timedelta | None = None,
    limit: int = 1000,
) -> dict[str, int]:
    """Repair what a crash left behind; the scheduler runs this every minute.

    - `queued` rows not enqueued for `relay_after` are enqueued again (the process died between
      commit and enqueue, or Redis lost the message);
    - `sending` rows older than `sending_stale` died mid-send: see
      :func:`worker.delivery.recover_stale_sending`.
    """
    settings = get_settings()
    relay_after = relay_after or timedelta(seconds=settings.relay_after_seconds)
    sending_stale = sending_stale or timedelta(seconds=settings.sending_stale_seconds)
    now = clock.now()
    touched: list[tuple[int, int | None]] = []
    with database.connection_context():
        stale = [
            (row.id, row.account_id)
            for row in OutboxMessage.select(OutboxMessage.id, OutboxMessage.account_id)
            .where(
                (OutboxMessage.status == QUEUED) & (OutboxMessage.enqueued_at < now - relay_after)
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        ]
        for outbox_id, account_id in stale:
            # Conditional: a worker or another relay may have taken the row since it was read.
            moved = (
                OutboxMessage.update(enqueued_at=now)
                .where(
                    (OutboxMessage.id == outbox_id)
                    & (OutboxMessage.status == QUEUED)
                    & (OutboxMessage.enqueued_at < now - relay_after)
                )
                .execute()
            )
            if moved:
                touched.append((outbox_id, account_id))
        # Each account's rows on its lane (worker.delivery_queue).
        enqueue_rows(touched)
        requeued = len(touched)
        recovered = recover_stale_sending(now - sending_stale, limit)
    counts = {"requeued": requeued, **recovered}
    if any(counts.values()):
        log.info("outbox.relay", **counts)
    return counts
