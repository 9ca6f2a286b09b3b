"""A channel that records when (on the fake clock) each message went out, and a loop that plays
the broker's delayed deliveries on the fake clock: each row's delivery fires when it is due."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import pairwise

from storage import clock
from storage.models import OutboxMessage
from storage.models.outbox import QUEUED
from worker import delivery, pacing
from worker.channels import Outbound
from worker.outbox import Outgoing, queue_messages


class TimedChannel:
    """Records (fake time, message) for every send."""

    name = "whatsapp"
    deduplicates = False

    def __init__(self) -> None:
        self.sent: list[tuple[datetime, Outbound]] = []
        self.lock = threading.Lock()

    def send(self, message: Outbound) -> str:
        with self.lock:
            self.sent.append((clock.now(), message))
        return f"provider-{message.idempotency_key}"

    @property
    def times(self) -> list[datetime]:
        return [when for when, _ in self.sent]


def queue_whatsapp(count: int, prefix: str = "m") -> list[int]:
    """`count` WhatsApp messages queued at once on the default sender; their ids."""
    rows = queue_messages(
        [Outgoing(f"{prefix}-{n}", "whatsapp", f"+3361234{n:04d}", "hello") for n in range(count)]
    )
    return [row.id for row in rows]


def gaps(times: Sequence[datetime]) -> list[float]:
    return [(b - a).total_seconds() for a, b in pairwise(times)]


def play_deliveries(
    outbox_ids: Sequence[int],
    frozen,
    max_rounds: int = 10_000,
    until: Callable[[], bool] | None = None,
) -> int:
    """Deliver the rows as the broker would: move the fake clock to the earliest due time
    (`enqueued_at`, which a deferral sets to its delay's end; for a row put back unclaimed
    because its sender was busy, its sender's quiet time, as pacing.not_yet gives it) and
    deliver what is due then. Returns the rounds it took; stops when none of the rows is queued
    (or `until` holds)."""
    for rounds in range(max_rounds):
        if until is not None and until():
            return rounds
        queued = list(
            OutboxMessage.select(OutboxMessage.id, OutboxMessage.enqueued_at)
            .where(OutboxMessage.id.in_(list(outbox_ids)) & (OutboxMessage.status == QUEUED))
            .order_by(OutboxMessage.enqueued_at, OutboxMessage.id)
        )
        if not queued:
            return rounds
        due_at = {row.id: clock.as_utc(row.enqueued_at) for row in queued}
        now = clock.now()
        ready = [outbox_id for outbox_id, due in due_at.items() if due <= now]
        due_at.update({d.outbox_id: d.until for d in pacing.not_yet(ready, now)})
        due = min(due_at.values())
        if due > now:
            frozen.set(due)
        now = clock.now()
        delivery.deliver_many([outbox_id for outbox_id, due in due_at.items() if due <= now])
    raise AssertionError("deliveries did not settle")
