"""Per-sender spacing on the fake clock: slots taken in turn, rows deferred on the broker
(never slept on), unpaced senders still sent in windows, caps per day."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from storage import clock as clock_module
from storage.db import database
from storage.models import OutboxMessage, Sender
from storage.models.outbox import SENT
from tests.pacing.helpers import TimedChannel, gaps, play_deliveries, queue_whatsapp
from worker import delivery, pacing, senders
from worker.channels import TransientSendError
from worker.delivery import Outcome
from worker.delivery_queue import PACED_QUEUE
from worker.outbox import Outgoing, queue_messages
from worker.outbox_relay import relay


def test_a_whatsapp_batch_leaves_30_to_60_seconds_apart(db, clock, env, whatsapp, fakeredis_broker):
    # Given ten WhatsApp messages queued at once on the default sender (30-60 s)
    ids = queue_whatsapp(10)
    # When the first delivery runs
    outcomes = delivery.deliver_many(ids)
    # Then one goes at once, and the nine others are put back with a delay, not slept on: on
    # the paced queue, each holding its slot
    assert sorted(outcomes.values()).count(Outcome.SENT) == 1
    assert list(outcomes.values()).count(Outcome.DEFERRED) == 9
    assert fakeredis_broker.delays.count(PACED_QUEUE) == 9
    # When every delayed delivery fires at its time
    play_deliveries(ids, clock)
    # Then each was sent once, 30 to 60 s after the previous one
    assert sorted(m.idempotency_key for _, m in whatsapp.sent) == sorted(
        f"m-{n}" for n in range(10)
    )
    extra = (senders.SPACING_GUARD + senders.Pacing(30, 60, None).slack).total_seconds()
    assert all(30 <= gap <= 60 + extra for gap in gaps(whatsapp.times)), gaps(whatsapp.times)
    assert len(set(gaps(whatsapp.times))) > 1  # random each time
    assert OutboxMessage.select().where(OutboxMessage.status == SENT).count() == 10


@pytest.mark.parametrize("slack", [True, False], ids=["slack", "no_slack"])
def test_a_send_a_moment_late_leaves_the_next_slot_on_time(
    db, clock, env, whatsapp, monkeypatch, slack
):
    # Given three rows of a sender paced at exactly 2 s, the first sent and the others holding
    # their slots (with the slack, or without it)
    if not slack:
        monkeypatch.setattr(senders, "SLOT_SLACK_SHARE", 0.0)
    senders.configure_sender("whatsapp:default", min_spacing=2, max_spacing=2)
    ids = queue_whatsapp(3)
    delivery.deliver_many(ids)
    second, third = (clock_module.as_utc(OutboxMessage.get_by_id(i).not_before) for i in ids[1:])
    # When the second starts 50 ms after its slot (its delayed delivery's latency), and the
    # third's delivery comes exactly on its slot
    clock.set(second + timedelta(milliseconds=50))
    assert delivery.deliver_many([ids[1]]) == {ids[1]: Outcome.SENT}
    clock.set(third)
    outcome = delivery.deliver_many([ids[2]])[ids[2]]
    # Then with the slack the third goes on its slot: the slots are 2 s, the guard and 5% of
    # the spacing apart, and the late start used part of that; without it the third waits
    slot_gap = (third - second).total_seconds()
    if slack:
        assert slot_gap == pytest.approx(2.12)
        assert outcome == Outcome.SENT
        assert whatsapp.times[-1] == third
    else:
        assert slot_gap == pytest.approx(2.02)
        assert outcome == Outcome.DEFERRED
    # And no two sends were ever closer than the spacing and the guard
    assert all(gap >= 2.02 for gap in gaps(whatsapp.times)), gaps(whatsapp.times)


def test_every_row_knows_its_sender(db, clock, env, whatsapp):
    env.setenv("WAHA_SESSION", "sales")
    ids = queue_whatsapp(1)
    assert OutboxMessage.get_by_id(ids[0]).sender == "whatsapp:sales"
    delivery.deliver_many(ids)
    assert whatsapp.sent[0][1].sender == "whatsapp:sales"


def test_an_accounts_own_sender_is_used_for_its_messages(db, clock, env, whatsapp):
    from worker.accounts import create_account

    account = create_account("Acme")
    senders.configure_sender("whatsapp:acme", account_id=account["id"])
    rows = queue_messages(
        [Outgoing("a-1", "whatsapp", "+33612340000", "hi")], account_id=account["id"]
    )
    assert rows[0].sender == "whatsapp:acme"


def test_slots_taken_by_many_threads_at_once_are_all_spaced(db, clock, env):
    # Given one sender paced at 2-3 s, and 8 threads each asking for 5 slots at the same time
    senders.configure_sender("whatsapp:shared", min_spacing=2, max_spacing=3)
    now = clock_module.now()
    slots = []
    lock = threading.Lock()

    def take() -> None:
        with database.connection_context():
            for _ in range(5):
                turn = senders.take_turn("whatsapp:shared", "whatsapp", None, now)
                with lock:
                    slots.append(now if turn.go else turn.hold)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then the 40 slots are distinct and 2 to 3 s apart (plus the guard and the slack): one
    # sequence for every thread
    slots.sort()
    assert len(slots) == 40
    extra = (senders.SPACING_GUARD + senders.Pacing(2, 3, None).slack).total_seconds()
    assert all(2 + extra <= gap <= 3 + extra for gap in gaps(slots)), gaps(slots)


def test_unpaced_senders_still_send_in_windows(db, clock, env, monkeypatch, stub_broker):
    # Given 30 messages on the log channel (unpaced)
    channel = TimedChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: channel)
    rows = queue_messages(
        [Outgoing(f"l-{n}", "log", f"+3361234{n:04d}", "hello") for n in range(30)]
    )
    # When they are delivered: all at once, none deferred, no slot written for the sender
    outcomes = delivery.deliver_many([r.id for r in rows])
    assert set(outcomes.values()) == {Outcome.SENT}
    assert (
        stub_broker.queues.get("delivery.DQ") is None
        or not stub_broker.queues["delivery.DQ"].qsize()
    )
    assert Sender.get(Sender.name == "log:default").next_slot_at is None


def test_a_daily_cap_moves_the_rest_to_the_next_day(db, clock, env, whatsapp):
    # Given a sender with a cap of 3 a day and 1-2 s spacing, and 5 messages at 09:00 UTC
    senders.configure_sender("whatsapp:default", min_spacing=1, max_spacing=2, daily_cap=3)
    ids = queue_whatsapp(5)
    play_deliveries(ids, clock)
    # Then three go today and two after midnight (OUTREACH_SENDING_TIMEZONE, UTC here)
    days = [when.date() for when in whatsapp.times]
    today = clock_module.now().date()
    start_day = days[0]
    assert days.count(start_day) == 3
    assert days.count(start_day + timedelta(days=1)) == 2
    assert today == start_day + timedelta(days=1)


def test_the_relay_leaves_a_deferred_row_to_its_delayed_delivery(db, clock, env, whatsapp):
    # Given a row deferred for two hours (its sender's next slot is far off)
    senders.configure_sender("whatsapp:default", min_spacing=7200, max_spacing=7200)
    ids = queue_whatsapp(2)
    delivery.deliver_many(ids)
    waiting = OutboxMessage.get_by_id(ids[1])
    assert waiting.status == "queued"
    # When the relay runs 20 minutes later (its usual window is 15)
    clock.advance(timedelta(minutes=20))
    counts = relay()
    # Then it does not enqueue the row again
    assert counts.get("requeued", 0) == 0
    # And well after its due time, a lost delayed delivery is enqueued again by the relay
    clock.advance(timedelta(hours=2))
    assert relay()["requeued"] == 1


def test_a_failing_pacing_check_costs_its_row_a_retry_only(db, clock, monkeypatch):
    # Given three rows in one window, and a pacing check that fails for the middle one
    channel = TimedChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: channel)
    ids = [r.id for r in queue_messages([Outgoing(f"g-{n}", "log", "+33612340000", "hi")
                                         for n in range(3)])]  # fmt: skip
    real_gate = pacing.gate

    def gate(row, now, settings=None, refused=False):
        if row.id == ids[1]:
            raise RuntimeError("sender table unreachable")
        return real_gate(row, now, settings, refused)

    monkeypatch.setattr(pacing, "gate", gate)
    # When the window is delivered, the message is to be retried...
    with pytest.raises(TransientSendError, match="pacing check failed"):
        delivery.deliver_many(ids)
    # ...and the others' sends were recorded: nothing left claimed
    statuses = [OutboxMessage.get_by_id(i).status for i in ids]
    assert statuses == ["sent", "queued", "sent"]
