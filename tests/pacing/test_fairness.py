"""Fair shares on paced senders: each account's sends are paced on its own sender, so one
account's huge campaign waits on its own sender's slots, never on another account's.

The worst case for the lanes (worker.delivery_queue): the two accounts' groups are served one
after the other, A's first, as on one queue (two accounts on the same lane). B's messages then
wait for A's messages to be *processed* (on a paced sender, a slot handed out and a deferral
per row, no send), not for A's sends. Accounts on different lanes take turns besides
(tests/pacing/test_lanes_process.py).
"""

from __future__ import annotations

import pytest

from storage import clock as clock_module
from storage.models import Account, OutboxMessage
from storage.models.outbox import SENT
from tests.pacing.helpers import TimedChannel, play_deliveries
from worker import delivery
from worker.delivery_queue import DELIVERY_GROUP
from worker.outbox import Outgoing, queue_messages
from worker.senders import configure_sender

BIG, SMALL = 600, 10


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> TimedChannel:
    recording = TimedChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: recording)
    return recording


def account_with_sender(name: str) -> int:
    account = Account.create(
        name=name, timezone="UTC", sending_hours="always", created_at=clock_module.now()
    )
    configure_sender(f"whatsapp:{name}", account_id=account.id)
    return int(account.id)


def test_a_small_account_is_not_starved_by_a_huge_campaign(db, clock, channel):
    # Given account A with 600 WhatsApp sends queued, then account B with 10, each on its
    # own sender (WhatsApp's default 30-60 s)
    a, b = account_with_sender("a"), account_with_sender("b")
    big = [r.id for r in queue_messages(
        [Outgoing(f"a-{n}", "whatsapp", f"+3361{n:07d}", "hi") for n in range(BIG)],
        account_id=a,
    )]  # fmt: skip
    small = [r.id for r in queue_messages(
        [Outgoing(f"b-{n}", "whatsapp", f"+3362{n:07d}", "hi") for n in range(SMALL)],
        account_id=b,
    )]  # fmt: skip
    # When their groups are served in order, as on one lane: A's first, then B's
    for first in range(0, BIG, DELIVERY_GROUP):
        delivery.deliver_many(big[first : first + DELIVERY_GROUP])
    delivery.deliver_many(small)

    # And the delayed deliveries fire at their times, until B's ten are sent
    def b_done() -> bool:
        sent = OutboxMessage.select().where(
            OutboxMessage.id.in_(small) & (OutboxMessage.status == SENT)
        )
        return sent.count() == SMALL

    play_deliveries(big + small, clock, until=b_done)
    # Then B's ten went out before A had sent its first 200 (the rule measured: about as many
    # as B's, one per slot on each sender)
    senders = [m.sender for _, m in channel.sent]
    assert senders.count("whatsapp:b") == SMALL
    assert senders.count("whatsapp:a") < 200
    assert senders.count("whatsapp:a") <= SMALL + 2
