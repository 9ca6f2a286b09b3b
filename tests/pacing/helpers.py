"""A channel that records when (on the fake clock) each message went out (and one whose sends
take time), accounts with a paced sender of their own, and a loop that plays the broker's
delayed deliveries on the fake clock: each row's delivery fires when it is due."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import pairwise

from storage import clock
from storage.models import Account, OutboxMessage
from storage.models.outbox import QUEUED
from worker import delivery, pacing, senders
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


class SlowChannel(TimedChannel):
    """A TimedChannel whose every send takes `takes` of the fake clock."""

    def __init__(self, frozen, takes: timedelta) -> None:
        super().__init__()
        self.frozen = frozen
        self.takes = takes

    def send(self, message: Outbound) -> str:
        answer = super().send(message)
        self.frozen.advance(self.takes)
        return answer


def accounts_with_senders(count: int, rows: int, spacing: float) -> dict[str, list[int]]:
    """`count` accounts (sending at any hour), each with its own WhatsApp sender
    (``whatsapp:s<n>``) paced at exactly `spacing` seconds and `rows` messages queued (keys
    ``a<n>-<k>``). Their row ids, by sender."""
    ids: dict[str, list[int]] = {}
    for n in range(count):
        account = Account.create(name=f"a{n}", timezone="UTC", created_at=clock.now())
        name = f"whatsapp:s{n}"
        senders.configure_sender(
            name, account_id=account.id, min_spacing=spacing, max_spacing=spacing
        )
        messages = [
            Outgoing(f"a{n}-{k}", "whatsapp", f"+3361{n}00000{k}", "hi") for k in range(rows)
        ]
        ids[name] = [row.id for row in queue_messages(messages, account_id=account.id)]
    Account.update(sending_hours="always").execute()
    return ids


def at_once(workers: int, work: Callable[[], object]) -> list[BaseException]:
    """`work` run by `workers` threads starting at the same moment; what they raised."""
    start = threading.Barrier(workers)
    failures: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            work()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


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
