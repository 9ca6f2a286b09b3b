"""What a paced send costs its sender's row, and how late rows take their turns.

A slot that has come is let go in one statement; a window's rows of one sender take their slots
in one read and one write; rows a window had no time for keep theirs; rows late by a spacing or
more line up on new slots instead of meeting again at the same time; a slow send makes the next
one wait from its end.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from storage import clock as clock_module
from storage.models import OutboxMessage
from storage.models.outbox import SENT
from storage.settings import get_settings
from tests.pacing.helpers import SlowChannel, gaps, play_deliveries, queue_whatsapp
from worker import delivery, senders
from worker.delivery import Outcome
from worker.delivery_queue import PACED_QUEUE

# Slots exactly a spacing and the guard apart: these tests count turns, not the slack.
pytestmark = pytest.mark.usefixtures("no_slot_slack")


def on_sender_table(seen: list[str]) -> list[str]:
    return [sql for sql in seen if re.search(r'(UPDATE|FROM|INTO) "sender"', sql)]


def test_a_slot_that_has_come_is_let_go_in_one_statement(db, clock, env, statements):
    # Given a sender paced at 2-3 s, and a row holding a slot that has just come
    senders.configure_sender("whatsapp:default", min_spacing=2, max_spacing=3)
    pacing = senders.pacing_of(senders.get_sender("whatsapp:default"), get_settings())
    now = clock_module.now()
    statements.clear()
    # When it asks for its turn
    turn = senders.take_turn("whatsapp:default", "whatsapp", now, now, pacing)
    # Then it goes, for one statement on the sender's row (no read)
    assert turn.go
    assert len(on_sender_table(statements)) == 1, statements
    assert statements[0].lstrip().upper().startswith("UPDATE")
    # And a second row on the same slot right after is held back by the quiet time
    again = senders.take_turn("whatsapp:default", "whatsapp", now, now, pacing)
    assert not again.go
    assert again.until is not None and again.until >= now + timedelta(seconds=2)


def test_a_windows_rows_take_their_slots_in_one_read_and_one_write(
    db, clock, env, whatsapp, statements
):
    # Given ten WhatsApp rows of one sender paced at 2-3 s
    senders.configure_sender("whatsapp:default", min_spacing=2, max_spacing=3)
    ids = queue_whatsapp(10)
    statements.clear()
    # When their window is delivered
    outcomes = delivery.deliver_many(ids)
    # Then one goes and nine wait for their slots, for a handful of statements on the sender
    # (its settings, read once in a while; its read and the slots' write; the first row's
    # turn), not two for every row
    assert list(outcomes.values()).count(Outcome.SENT) == 1
    assert list(outcomes.values()).count(Outcome.DEFERRED) == 9
    assert len(on_sender_table(statements)) <= 4, on_sender_table(statements)
    # And the slots they hold are 2 to 3 s apart (plus the guard), in the order of the rows
    holds = [OutboxMessage.get_by_id(i).not_before for i in ids[1:]]
    assert all(2 <= gap <= 3.1 for gap in gaps(holds)), gaps(holds)


def test_rows_a_window_had_no_time_for_keep_their_slots(db, clock, env, whatsapp, monkeypatch):
    # Given five rows of one sender paced at exactly 2 s, and a window with no time to spare
    senders.configure_sender("whatsapp:default", min_spacing=2, max_spacing=2)
    ids = queue_whatsapp(5)
    monkeypatch.setattr(delivery, "WINDOW_SECONDS", -1.0)
    # When the window is delivered: the first row goes, then its time is up
    delivery.deliver_many(ids)
    first = whatsapp.times[0]
    # Then the four others wait on the slots they were given, not on new ones after them
    holds = [clock_module.as_utc(OutboxMessage.get_by_id(i).not_before) for i in ids[1:]]
    expected = [first + n * (timedelta(seconds=2) + senders.SPACING_GUARD) for n in range(1, 5)]
    assert holds == expected
    sender = senders.get_sender("whatsapp:default")
    assert clock_module.as_utc(sender.next_slot_at) == expected[-1] + timedelta(seconds=2.02)
    # And each is sent once, on its slot
    play_deliveries(ids, clock)
    assert whatsapp.times == [first, *expected]


def test_rows_late_by_a_spacing_line_up_instead_of_meeting_again(db, clock, env, whatsapp):
    # Given four rows of a sender paced at exactly 2 s, each holding its slot
    senders.configure_sender("whatsapp:default", min_spacing=2, max_spacing=2)
    ids = queue_whatsapp(4)
    delivery.deliver_many(ids)
    assert len(whatsapp.sent) == 1
    # When the workers fall 10 s behind, and the three delayed deliveries fire together
    clock.advance(timedelta(seconds=10))
    outcomes = delivery.deliver_many(ids[1:])
    # Then the first of them goes, and the other two take two new slots, one after the other,
    # not one time for both
    assert list(outcomes.values()).count(Outcome.SENT) == 1
    waiting = [OutboxMessage.get_by_id(i) for i in ids[1:] if outcomes[i] == Outcome.DEFERRED]
    holds = sorted(clock_module.as_utc(row.not_before) for row in waiting)
    assert len(holds) == 2
    assert gaps(holds) == [2.02]
    # And played out, each row is sent once, never closer than 2 s to the one before
    rounds = play_deliveries(ids, clock)
    assert rounds == 2
    assert sorted(m.idempotency_key for _, m in whatsapp.sent) == [f"m-{n}" for n in range(4)]
    assert all(gap >= 2 for gap in gaps(whatsapp.times)), gaps(whatsapp.times)
    assert OutboxMessage.select().where(OutboxMessage.status == SENT).count() == 4


def test_a_row_late_by_a_spacing_is_not_counted_twice_in_its_day(db, clock, env):
    # Given a sender capped at 3 a day that handed out its 3 slots today
    settings = get_settings()
    senders.configure_sender("whatsapp:default", min_spacing=1, max_spacing=1, daily_cap=3)
    now = clock_module.now()
    row = senders.get_sender("whatsapp:default")
    row.day, row.day_count, row.next_slot_at = now.date().isoformat(), 3, now
    pacing = senders.pacing_of(row, settings)
    # When a late row that held one of today's slots takes a new one
    slot, values = senders._next_slot(row, pacing, now, settings, counted=now)
    # Then it stays today, still 3 counted; a new row instead waits for tomorrow
    assert slot == now and values["day_count"] == 3
    fresh, _ = senders._next_slot(row, pacing, now, settings)
    assert fresh.date() == now.date() + timedelta(days=1)


def test_after_a_slow_send_the_next_waits_its_spacing_from_the_end(db, clock, env, monkeypatch):
    # Given a sender paced at exactly 2 s, and sends that take 5 s to answer
    channel = SlowChannel(clock, timedelta(seconds=5))
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: channel)
    senders.configure_sender("whatsapp:default", min_spacing=2, max_spacing=2)
    ids = queue_whatsapp(3)
    # When they are played out
    play_deliveries(ids, clock)
    # Then each went at least 2 s after the previous one ended (5 s after it started)
    assert len(channel.times) == 3
    assert all(gap >= 7 for gap in gaps(channel.times)), gaps(channel.times)


def test_a_deferral_is_never_delayed_less_than_its_wait(db, clock, monkeypatch):
    # Given a row deferred to 0.4 ms from now
    from worker import pacing as pacing_module

    asked: list[tuple[object, object, object]] = []
    monkeypatch.setattr(pacing_module, "enqueue_later_on", lambda many, held=(): asked.extend(many))
    until = clock_module.now() + timedelta(microseconds=400)
    deferral = pacing_module.Deferral(7, 1, until, until, "spacing", account_id=3)
    # When its delivery is enqueued
    pacing_module.enqueue_deferred([deferral])
    # Then it is delayed a whole millisecond, not 0 (which would fire it early, to be deferred
    # again)
    # (on the paced queue: the row holds a slot)
    assert asked == [([7], 1, PACED_QUEUE)]
