"""Rows that may not go yet are put back unclaimed (worker.pacing.not_yet).

A row holding a slot that has come, whose sender sent too recently (the row before it went out
late), waits until the sender is quiet again without being claimed: no write of the row, and
its delivery is put back for exactly the wait. Rows holding no slot, several of one sender, are
given their slots in one statement and wait for them, unclaimed, but for the first, which goes.
A row late by a spacing takes its sender's next free slot, unclaimed too. Everything the turn
itself decides (a pause, hours, a long wait, a lone row) still goes through the claim; a failed
check costs nothing but the check; and however many workers look at the same rows at once, each
is sent once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from storage import clock as clock_module
from storage.models import OutboxMessage, Sender
from storage.models.outbox import QUEUED, SENT
from tests.pacing.helpers import (
    TimedChannel,
    accounts_with_senders,
    at_once,
    gaps,
    play_deliveries,
    queue_whatsapp,
)
from worker import delivery, pacing, sender_sql, senders
from worker.delivery import Outcome
from worker.delivery_queue import PACED_QUEUE

# Slots exactly a spacing and the guard apart: these tests count turns, not the slack.
pytestmark = pytest.mark.usefixtures("no_slot_slack")

SENDER = "whatsapp:default"
SPACING = timedelta(seconds=2) + senders.SPACING_GUARD


@pytest.fixture
def put_back(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Sequence[int], int | None, object]]:
    """Every delayed delivery the pacing enqueues from now on: (ids, delay in ms, queue)."""
    asked: list[tuple[Sequence[int], int | None, object]] = []
    monkeypatch.setattr(pacing, "enqueue_later_on", lambda many, held=(): asked.extend(many))
    return asked


def outbox_writes(statements: list[str]) -> list[str]:
    updates = [sql for sql in statements if sql.lstrip().upper().startswith("UPDATE")]
    return [sql for sql in updates if "outbox" in sql]


def one_sent_one_held(clock) -> tuple[int, datetime]:
    """A sender paced at exactly 2 s; its first row sent now, its second holding the next slot.
    Returns the second's id and when the first went."""
    senders.configure_sender(SENDER, min_spacing=2, max_spacing=2)
    ids = queue_whatsapp(2)
    delivery.deliver_many(ids)
    return ids[1], clock_module.now()


def sent_late(at: datetime) -> None:
    """The sender's last send went out at `at` (later than its slot)."""
    Sender.update(last_send_at=at).where(Sender.name == SENDER).execute()


def test_a_row_whose_sender_sent_late_waits_for_its_quiet_time_unclaimed(
    db, clock, env, whatsapp, put_back, statements
):
    # Given a row holding a slot that has come, and its sender's last send 0.5 s ago (late)
    second, went = one_sent_one_held(clock)
    clock.set(went + SPACING)
    sent_late(clock_module.now() - timedelta(seconds=0.5))
    before = OutboxMessage.get_by_id(second)
    put_back.clear()
    statements.clear()
    # When its delivery fires
    outcomes = delivery.deliver_many([second])
    # Then it is put back until the sender is quiet (2.02 s after that send), unclaimed: the
    # row is not written, and nothing is sent
    assert outcomes == {second: Outcome.DEFERRED}
    assert put_back == [([second], 1520, PACED_QUEUE)]
    assert outbox_writes(statements) == []
    row = OutboxMessage.get_by_id(second)
    assert (row.status, row.attempts) == (QUEUED, before.attempts)
    assert len(whatsapp.sent) == 1
    # And when that time comes, it goes, 2.02 s after the late send
    clock.advance(timedelta(milliseconds=1520))
    assert delivery.deliver_many([second]) == {second: Outcome.SENT}
    late = went + SPACING - timedelta(seconds=0.5)
    assert whatsapp.times[-1] == late + SPACING


def test_of_two_due_rows_of_one_sender_the_second_waits_a_spacing_after_the_first(
    db, clock, env, whatsapp, put_back
):
    # Given three rows of a sender paced at exactly 2 s: the first sent, the other two holding
    # the next two slots, both come (the later one by 0.5 s)
    senders.configure_sender(SENDER, min_spacing=2, max_spacing=2)
    ids = queue_whatsapp(3)
    delivery.deliver_many(ids)
    clock.advance(2 * SPACING + timedelta(seconds=0.5))
    put_back.clear()
    attempts = OutboxMessage.get_by_id(ids[2]).attempts
    # When their deliveries fire together
    outcomes = delivery.deliver_many(ids[1:])
    # Then the first of them goes, and the second is put back, unclaimed, a spacing after it
    assert outcomes == {ids[1]: Outcome.SENT, ids[2]: Outcome.DEFERRED}
    assert put_back == [([ids[2]], 2020, PACED_QUEUE)]
    assert OutboxMessage.get_by_id(ids[2]).attempts == attempts
    # And played out, all three are sent once, 2 s apart at least
    put_back.clear()
    play_deliveries(ids, clock)
    assert [m.idempotency_key for _, m in whatsapp.sent] == ["m-0", "m-1", "m-2"]
    assert all(gap >= 2 for gap in gaps(whatsapp.times)), gaps(whatsapp.times)


def test_rows_of_one_sender_are_given_their_slots_without_being_claimed(
    db, clock, env, whatsapp, put_back, statements
):
    # Given ten WhatsApp rows of one sender paced at exactly 2 s, holding no slot
    senders.configure_sender(SENDER, min_spacing=2, max_spacing=2)
    ids = queue_whatsapp(10)
    statements.clear()
    # When their delivery runs
    outcomes = delivery.deliver_many(ids)
    # Then the first goes now, and the nine others wait for their slots, 2.02 s apart
    assert [outcomes[i] for i in ids] == [Outcome.SENT] + [Outcome.DEFERRED] * 9
    assert put_back == [([i], 2020 * n, PACED_QUEUE) for n, i in enumerate(ids[1:], start=1)]
    rows = [OutboxMessage.get_by_id(i) for i in ids[1:]]
    now = clock_module.now()
    assert [clock_module.as_utc(r.not_before) for r in rows] == [
        now + n * SPACING for n in range(1, 10)
    ]
    assert all(r.enqueued_at == r.not_before for r in rows)
    # And none of the nine was claimed: the slots are one write of the rows, not a claim and a
    # deferral each
    assert {(r.status, r.attempts) for r in rows} == {(QUEUED, 0)}
    assert len(outbox_writes(statements)) == 3, outbox_writes(statements)  # slots, claim, outcome


@pytest.mark.parametrize("case", ["paused sender", "outside its hours", "a lone row"])
def test_rows_holding_no_slot_that_the_turn_decides_are_left_to_the_claim(db, clock, env, case):
    # Given rows of a paced sender holding no slot, in one of the cases the turn settles
    senders.configure_sender(SENDER, min_spacing=2, max_spacing=2)
    ids = queue_whatsapp(1 if case == "a lone row" else 3)
    if case == "paused sender":
        senders.pause(SENDER, clock_module.now() + timedelta(hours=1), "by hand")
    elif case == "outside its hours":
        senders.configure_sender(SENDER, sending_hours="mon-sat 03:00-04:00")
    pacing.forget()
    # When the check looks at them
    waiting = pacing.not_yet(ids, clock_module.now())
    # Then it gives them no slot, and leaves them to the claim
    assert waiting == []
    assert [OutboxMessage.get_by_id(i).not_before for i in ids] == [None] * len(ids)


@pytest.mark.parametrize(
    "case",
    ["paused sender", "wait longer than the put-back's bound", "unpaced"],
)
def test_what_the_turn_decides_is_left_to_the_claim(db, clock, env, whatsapp, case):
    # Given a row holding a slot that has come, its sender busy in one of the ways the turn
    # itself settles (and writes down on the row)
    second, went = one_sent_one_held(clock)
    now = went + SPACING
    if case == "paused sender":
        Sender.update(paused_until=now + timedelta(hours=1)).execute()
        sent_late(now - timedelta(seconds=0.5))
    elif case == "wait longer than the put-back's bound":
        senders.configure_sender(SENDER, min_spacing=120, max_spacing=120)
        sent_late(now - timedelta(seconds=10))
    else:
        senders.configure_sender(SENDER, min_spacing=0, max_spacing=0)
        sent_late(now - timedelta(seconds=0.5))
    pacing.forget()
    clock.set(now)
    # When the check looks at it
    waiting = pacing.not_yet([second], now)
    # Then it leaves it to the claim
    assert waiting == []


def test_a_row_late_by_a_spacing_takes_the_senders_next_free_slot_unclaimed(
    db, clock, env, whatsapp, put_back, statements
):
    # Given a row whose slot passed 2.5 s ago (the workers fell behind), its sender's last
    # send 0.1 s ago, and the sender's next free slot 3 s from now
    second, went = one_sent_one_held(clock)
    now = went + SPACING + timedelta(seconds=2.5)
    sent_late(now - timedelta(seconds=0.1))
    free = now + timedelta(seconds=3)
    Sender.update(next_slot_at=free).where(Sender.name == SENDER).execute()
    held_before = OutboxMessage.get_by_id(second)
    pacing.forget()
    clock.set(now)
    put_back.clear()
    # When its delivery fires
    outcomes = delivery.deliver_many([second])
    # Then it is not claimed: it takes the sender's next free slot, written on the row, and is
    # put back until then, rather than wait with the sender's next rows for its quiet time
    assert outcomes == {second: Outcome.DEFERRED}
    row = OutboxMessage.get_by_id(second)
    assert (row.status, row.attempts) == (QUEUED, held_before.attempts)
    assert row.not_before == free
    assert put_back == [([second], 3000, PACED_QUEUE)]
    sender = Sender.get(Sender.name == SENDER)
    assert sender.next_slot_at == free + SPACING
    assert len(whatsapp.sent) == 1
    # And when that slot comes, it goes
    clock.set(free)
    assert delivery.deliver_many([second]) == {second: Outcome.SENT}


def test_a_late_row_whose_sender_changed_since_the_read_is_left_to_its_claim(
    db, clock, env, whatsapp, monkeypatch
):
    # Given a row late by a spacing, and its sender written by another worker right after
    # this one read it
    second, went = one_sent_one_held(clock)
    now = went + SPACING + timedelta(seconds=2.5)
    sent_late(now - timedelta(seconds=0.1))
    pacing.forget()
    clock.set(now)
    real = sender_sql.queued_rows

    def read_then_changed(outbox_ids):
        rows = real(outbox_ids)
        Sender.update(version=Sender.version + 1).where(Sender.name == SENDER).execute()
        return rows

    monkeypatch.setattr(sender_sql, "queued_rows", read_then_changed)
    # When the check looks at it
    waiting = pacing.not_yet([second], now)
    # Then it leaves it to the claim, which reads the sender again; the row is as it was
    assert waiting == []
    assert OutboxMessage.get_by_id(second).not_before == went + SPACING


def test_a_failed_check_leaves_every_row_to_its_claim_and_turn(
    db, clock, env, whatsapp, put_back, monkeypatch
):
    # Given a row whose sender sent late, and a check that fails
    second, went = one_sent_one_held(clock)
    clock.set(went + SPACING)
    sent_late(clock_module.now() - timedelta(seconds=0.5))
    attempts = OutboxMessage.get_by_id(second).attempts

    def broken(outbox_ids):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(sender_sql, "queued_rows", broken)
    # When its delivery fires
    outcomes = delivery.deliver_many([second])
    # Then it is claimed and takes its turn as before: put back by the turn, written down
    assert outcomes == {second: Outcome.DEFERRED}
    row = OutboxMessage.get_by_id(second)
    assert (row.status, row.attempts) == (QUEUED, attempts + 1)
    assert clock_module.as_utc(row.enqueued_at) == clock_module.now() + timedelta(seconds=1.52)
    assert len(whatsapp.sent) == 1


def deliver_at_once(workers: int, outbox_ids: Sequence[int]) -> list[BaseException]:
    """`workers` threads deliver the same rows at the same moment; what they raised."""
    return at_once(workers, lambda: delivery.deliver_many(outbox_ids))


def test_workers_giving_slots_to_the_same_rows_at_once_send_each_once(db, clock, env, whatsapp):
    # Given six rows of a sender paced at exactly 2 s, holding no slot
    senders.configure_sender(SENDER, min_spacing=2, max_spacing=2)
    ids = queue_whatsapp(6)
    # When eight workers deliver them at the same moment
    assert deliver_at_once(8, ids) == []
    # Then at most one row went now (none, when the rows took the slots of a worker that
    # reserved after the one whose first slot was now: that slot is left unused), and every
    # row holds one slot, no two the same
    assert len(whatsapp.sent) <= 1
    holds = [OutboxMessage.get_by_id(i).not_before for i in ids]
    assert None not in holds and len(set(holds)) == 6
    # And played out, each is sent once, 2 s apart at least
    play_deliveries(ids, clock)
    assert sorted(m.idempotency_key for _, m in whatsapp.sent) == [f"m-{n}" for n in range(6)]
    assert all(gap >= 2 for gap in gaps(whatsapp.times)), gaps(whatsapp.times)


def test_workers_looking_at_the_same_rows_at_once_send_each_once(db, clock, env, monkeypatch):
    # Given three accounts, each with its own sender paced at exactly 2 s and three rows: the
    # first of each sent, the second's slot come
    channel = TimedChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: channel)
    ids = accounts_with_senders(3, rows=3, spacing=2)
    everything = [i for rows in ids.values() for i in rows]
    delivery.deliver_many(everything)
    clock.advance(SPACING + timedelta(seconds=0.5))
    due = [rows[1] for rows in ids.values()] + [rows[2] for rows in ids.values()]
    # When eight workers deliver the same rows at the same moment
    failures = deliver_at_once(8, due)
    # Then each sender sent once more, not once per worker
    assert failures == []
    sent_now = [m.idempotency_key for when, m in channel.sent if when == clock_module.now()]
    assert sorted(sent_now) == ["a0-1", "a1-1", "a2-1"]
    # And played out, every row is sent exactly once, 2 s apart at least on each sender
    play_deliveries(everything, clock)
    keys = [m.idempotency_key for _, m in channel.sent]
    assert sorted(keys) == sorted(f"a{n}-{k}" for n in range(3) for k in range(3))
    for n in range(3):
        times = [when for when, m in channel.sent if m.idempotency_key.startswith(f"a{n}-")]
        assert all(gap >= 2 for gap in gaps(times)), gaps(times)
    assert OutboxMessage.select().where(OutboxMessage.status == SENT).count() == 9
