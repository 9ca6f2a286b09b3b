"""Fair shares: each account's deliveries go on its own lane (a Dramatiq queue), a message of
no account on the default delivery queue; whatever enqueues a delivery again (the relay, a
deferral) keeps the account's lane, but a row put back until its slot on a paced sender, which
waits on the paced queue; and a delivery message never mixes accounts."""

from __future__ import annotations

from datetime import timedelta

from dramatiq import Message

from storage.models import Account, OutboxMessage
from tests.lanes import delivery_messages
from tests.pacing.helpers import TimedChannel
from worker import delivery
from worker.delivery import Outcome, deliver_many
from worker.delivery_queue import (
    DELIVERY_GROUP,
    DELIVERY_LANES,
    DELIVERY_QUEUE,
    PACED_QUEUE,
    lane_of,
)
from worker.outbox import Outgoing, queue_message, queue_messages
from worker.outbox_relay import relay
from worker.senders import configure_sender


def new_account(clock, name: str, hours: str = "always") -> int:
    return int(Account.create(name=name, sending_hours=hours, created_at=clock.now()).id)


def outgoing(prefix: str, count: int) -> list[Outgoing]:
    return [Outgoing(f"{prefix}-{n}", "log", f"+3361234{n:04d}", "hi") for n in range(count)]


def account_of(outbox_id: int) -> int | None:
    return OutboxMessage.get_by_id(outbox_id).account_id


def test_lanes_are_the_account_id_modulo_the_lane_count():
    # Given accounts 1 and 1 + DELIVERY_LANES, account 2, and no account
    # Then the first two share a lane, the third has another, and no account is the default
    assert lane_of(1) == lane_of(1 + DELIVERY_LANES) == f"{DELIVERY_QUEUE}.lane1"
    assert lane_of(2) == f"{DELIVERY_QUEUE}.lane2"
    assert lane_of(None) == DELIVERY_QUEUE


def test_each_accounts_deliveries_go_on_its_lane_and_the_rest_on_the_default_queue(
    db, clock, stub_broker
):
    # Given two accounts
    a, b = new_account(clock, "A"), new_account(clock, "B")
    # When each queues a batch, and a message of no account is queued by hand
    queue_messages(outgoing("a", DELIVERY_GROUP + 1), account_id=a)
    queue_messages(outgoing("b", 3), account_id=b)
    manual = queue_message("by-hand", "log", "+33612340000", "hi")
    # Then A's two groups are on A's lane, B's one on B's, the manual one on the default queue
    messages = delivery_messages(stub_broker)
    placed = [(m.queue_name, [account_of(i) for i in m.args[0]]) for m in messages]
    assert sorted((queue, len(accounts)) for queue, accounts in placed) == sorted(
        [(lane_of(a), DELIVERY_GROUP), (lane_of(a), 1), (lane_of(b), 3), (DELIVERY_QUEUE, 1)]
    )
    assert {queue: set(accounts) for queue, accounts in placed} == {
        lane_of(a): {a},
        lane_of(b): {b},
        DELIVERY_QUEUE: {None},
    }
    assert manual.account_id is None


def test_the_relay_puts_each_accounts_lost_rows_on_its_lane_one_account_per_message(
    db, clock, stub_broker
):
    # Given rows of two accounts sharing a lane, and of a third, whose deliveries were lost
    a = new_account(clock, "A")
    for n in range(DELIVERY_LANES - 1):
        new_account(clock, f"filler-{n}")
    same_lane = new_account(clock, "same lane as A")
    other = new_account(clock, "other")
    assert lane_of(same_lane) == lane_of(a) != lane_of(other)
    for account in (a, same_lane, other):
        queue_messages(outgoing(f"acct-{account}", 2), account_id=account)
    stub_broker.flush_all()
    clock.advance(timedelta(minutes=20))
    # When the relay runs
    assert relay(relay_after=timedelta(minutes=15))["requeued"] == 6
    # Then each account's rows are one message on its lane, never mixed with another account's
    placed = sorted(
        (m.queue_name, sorted({account_of(i) for i in m.args[0]}))
        for m in delivery_messages(stub_broker)
    )
    assert placed == sorted(
        [(lane_of(a), [a]), (lane_of(a), [same_lane]), (lane_of(other), [other])]
    )


def test_a_deferred_delivery_waits_on_its_accounts_lane(db, clock, stub_broker):
    # Given an account whose sending hours open a minute from now, with a message queued
    account = new_account(clock, "Later", hours="mon-sat 09:01-20:00")
    [row] = queue_messages(outgoing("later", 1), account_id=account)
    stub_broker.flush_all()
    # When its delivery finds it outside the hours
    assert deliver_many([row.id]) == {row.id: Outcome.DEFERRED}
    # Then its delayed delivery is on the account's lane's delayed queue, nowhere else
    delayed = [name for name, queue in stub_broker.queues.items() if queue.qsize()]
    assert delayed == [f"{lane_of(account)}.DQ"]


def test_rows_put_back_until_their_slot_wait_on_the_paced_queue_whatever_their_account(
    db, clock, stub_broker, monkeypatch
):
    # Given two accounts on different lanes, each with its own WhatsApp sender paced at 30 s,
    # and three messages queued on each
    channel = TimedChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: channel)
    first, second = new_account(clock, "First"), new_account(clock, "Second")
    assert lane_of(first) != lane_of(second)
    ids = []
    for account in (first, second):
        configure_sender(f"whatsapp:s{account}", account_id=account, min_spacing=30)
        whatsapp = [
            Outgoing(f"w{account}-{n}", "whatsapp", f"+336123{account:02d}{n:03d}", "hi")
            for n in range(3)
        ]
        ids += [row.id for row in queue_messages(whatsapp, account_id=account)]
    stub_broker.flush_all()
    # When their deliveries run
    outcomes = {**deliver_many(ids[:3]), **deliver_many(ids[3:])}
    # Then the first of each goes, and the others wait for their slots on the paced queue,
    # both accounts' rows, none on a lane
    assert [outcomes[i] for i in ids] == [Outcome.SENT, *[Outcome.DEFERRED] * 2] * 2
    delayed = sorted(name for name, queue in stub_broker.queues.items() if queue.qsize())
    assert delayed == [f"{PACED_QUEUE}.DQ"]
    waiting = [
        i
        for body in stub_broker.queues[f"{PACED_QUEUE}.DQ"].queue
        for i in Message.decode(body).args[0]
    ]
    assert sorted(waiting) == sorted(ids[1:3] + ids[4:])
    assert all(OutboxMessage.get_by_id(i).not_before is not None for i in waiting)
