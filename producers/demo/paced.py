"""A paced WhatsApp batch on the demo's simulated clock: the morning after the simulated days,
one account queues a few WhatsApp messages from its own sender, paced 30-60 s apart, a minute
before its sending hours open.

The delivery is the real one (``worker.delivery.deliver_many``: the pacing gate, the sender's
slots, the deferrals). Only the waiting is simulated: the in-process broker's delays run on the
wall clock, so instead of waiting for them the demo moves its clock to the earliest time a
deferred row is due (the row's `enqueued_at`, which its deferral set; for a row put back
unclaimed because its sender was busy, the sender's quiet time, as ``worker.pacing.not_yet``
gives it) and delivers what is due then, as a worker would when the delayed message fires.
The broker's delayed copies, played so, are dropped at the end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from producers.demo.runtime import Runtime
from storage import clock
from storage.models.accounts import Account
from storage.models.outbox import QUEUED, OutboxMessage
from worker.delivery import deliver_many
from worker.outbox import Outgoing, queue_messages
from worker.pacing import not_yet
from worker.senders import configure_sender

# The account's own WhatsApp sender for the batch (a WAHA session's name).
PACED_SENDER = "whatsapp:garage-dupont"
# Messages in the batch: enough to see the spacing, few enough to keep the output short.
PACED_MESSAGES = 5
# Seconds between two sends of the sender, drawn at random each time (WAHA's own advice).
PACED_SPACING = (30.0, 60.0)
# The batch's sending hours (a campaign's override), read in the account's zone.
PACED_HOURS = "mon-sat 09:00-20:00"
# Local time the batch is queued at: a minute before the hours open.
PACED_QUEUED_AT = timedelta(hours=8, minutes=59)
# Where the batch's messages go (the demo sends everything to the log channel).
PACED_PHONES = tuple(f"+3361000000{n}" for n in range(PACED_MESSAGES))
# Deliveries played at most before the demo gives up (each round sends or defers a row).
MAX_ROUNDS = 100


def _play(outbox_ids: list[int], frozen: Any) -> None:
    """Deliver the rows as the delayed messages would, on the simulated clock."""
    for _ in range(MAX_ROUNDS):
        queued = list(
            OutboxMessage.select(OutboxMessage.id, OutboxMessage.enqueued_at)
            .where(OutboxMessage.id.in_(outbox_ids) & (OutboxMessage.status == QUEUED))
            .order_by(OutboxMessage.enqueued_at, OutboxMessage.id)
        )
        if not queued:
            return
        due_at = {row.id: clock.as_utc(row.enqueued_at) for row in queued}
        now = clock.now()
        ready = [outbox_id for outbox_id, due in due_at.items() if due <= now]
        due_at.update({d.outbox_id: d.until for d in not_yet(ready, now)})
        due = min(due_at.values())
        if due > now:
            frozen.set(due)
        now = clock.now()
        deliver_many([outbox_id for outbox_id, due in due_at.items() if due <= now])
    raise RuntimeError("the paced batch did not settle")


def run_paced_batch(runtime: Runtime, account_id: int, day: datetime) -> dict[str, Any]:
    """Queue the batch on `day` (a UTC midnight) and play it; returns when each went out."""
    account = Account.get_by_id(account_id)
    zone = ZoneInfo(account.timezone)
    local_day = datetime.combine(day.date(), datetime.min.time(), tzinfo=zone)
    queued_at = (local_day + PACED_QUEUED_AT).astimezone(day.tzinfo)
    runtime.clock.set(queued_at)
    low, high = PACED_SPACING
    configure_sender(PACED_SENDER, account_id=account_id, min_spacing=low, max_spacing=high)
    rows = queue_messages(
        [
            Outgoing(f"paced-demo:{n}", "whatsapp", phone, "Hello from Garage Dupont")
            for n, phone in enumerate(PACED_PHONES)
        ],
        source="paced-demo",
        account_id=account_id,
        sending_hours=PACED_HOURS,
    )
    _play([row.id for row in rows], runtime.clock)
    runtime.broker.flush_all()
    sent = [
        clock.as_utc(row.finished_at)
        for row in OutboxMessage.select(OutboxMessage.finished_at)
        .where(OutboxMessage.id.in_([row.id for row in rows]))
        .order_by(OutboxMessage.finished_at)
    ]
    return {
        "sender": PACED_SENDER,
        "account_id": account_id,
        "timezone": account.timezone,
        "spacing_seconds": list(PACED_SPACING),
        "sending_hours": PACED_HOURS,
        "queued_at": queued_at.isoformat(),
        "sent_at": [when.isoformat() for when in sent],
        "gaps_seconds": [round((b - a).total_seconds(), 1) for a, b in pairwise(sent)],
    }
