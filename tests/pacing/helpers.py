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
from worker import delivery
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
    (`enqueued_at`, which a deferral sets to its delay's end) and deliver what is due then.
    Returns the rounds it took; stops when none of the rows is queued (or `until` holds)."""
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
        due = clock.as_utc(queued[0].enqueued_at)
        if due > clock.now():
            frozen.set(due)
        now = clock.now()
        ready = [row.id for row in queued if clock.as_utc(row.enqueued_at) <= now]
        delivery.deliver_many(ready)
    raise AssertionError("deliveries did not settle")
