"""A window's turns taken together (worker.pacing.take_turns, keep_turn).

The first due row of each paced sender in a window takes its turn in one statement for them
all, before the window's first send, where each took its own just before its send. A turn so
taken is the row's for a moment only: a send starting later (the window's sends before it were
slow) moves the turn to its start, or, when another send of its sender was let go meanwhile,
takes its turn again. Each turn is taken for when its row is expected to start (the sends
before it in the window take time, as lately measured), at most 40 ms ahead. A sender not
quiet, or paused, is left out, and its row takes its turn as before. The read before the
claim keeps what it read of each sender and account, so the claimed rows' checks read neither
again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from storage import clock as clock_module
from storage.models import OutboxMessage, Sender
from storage.models.outbox import SENT
from tests.pacing.helpers import (
    SlowChannel,
    accounts_with_senders,
    at_once,
    gaps,
    play_deliveries,
    queue_whatsapp,
)
from worker import delivery, pacing, read_cache, sender_sql, senders
from worker.delivery import Outcome
from worker.outbox import Outgoing, queue_messages

# Slots exactly a spacing and the guard apart: these tests count turns, not the slack.
pytestmark = pytest.mark.usefixtures("no_slot_slack")

SPACING = timedelta(seconds=2) + senders.SPACING_GUARD


def sender_updates(statements: list[str]) -> list[str]:
    return [sql for sql in statements if sql.lstrip().upper().startswith('UPDATE "SENDER"')]


def three_senders_due(clock) -> dict[str, list[int]]:
    """Three accounts, each with its own sender paced at exactly 2 s and two rows: the first of
    each sent, and the clock moved to the second's slot. Their row ids, by sender."""
    ids = accounts_with_senders(3, rows=2, spacing=2)
    delivery.deliver_many([i for rows in ids.values() for i in rows])
    clock.advance(SPACING)
    return ids


def last_send(name: str) -> datetime | None:
    return Sender.get(Sender.name == name).last_send_at


def test_a_window_takes_its_senders_turns_in_one_statement(db, clock, env, whatsapp, statements):
    # Given three senders, each with a row whose slot has come
    ids = three_senders_due(clock)
    due = [rows[1] for rows in ids.values()]
    statements.clear()
    # When one window delivers the three rows
    outcomes = delivery.deliver_many(due)
    # Then all three are sent now, and the senders were written by one statement, not three
    assert outcomes == dict.fromkeys(due, Outcome.SENT)
    now = clock_module.now()
    assert sorted(m.idempotency_key for when, m in whatsapp.sent if when == now) == [
        "a0-1",
        "a1-1",
        "a2-1",
    ]
    assert len(sender_updates(statements)) == 1
    assert all(last_send(name) == now for name in ids)


def test_a_sender_not_quiet_is_left_out_and_its_row_waits(db, clock, env, whatsapp):
    # Given three senders with a row due, one of which sent 0.5 s ago (late)
    ids = three_senders_due(clock)
    late = clock_module.now() - timedelta(seconds=0.5)
    Sender.update(last_send_at=late).where(Sender.name == "whatsapp:s1").execute()
    rows = [OutboxMessage.get_by_id(rows[1]) for rows in ids.values()]
    # When their turns are taken together
    turns = pacing.take_turns(rows, clock_module.now())
    # Then the two quiet senders are let go, the late one is refused, and not written
    now = clock_module.now()
    assert turns.taken == {ids["whatsapp:s0"][1]: now, ids["whatsapp:s2"][1]: now}
    assert turns.refused == {ids["whatsapp:s1"][1]}
    assert last_send("whatsapp:s1") == late


def test_a_row_refused_its_turn_is_deferred_without_asking_again(db, clock, env, statements):
    # Given a row due on a sender that sent 0.5 s ago, whose turn was just refused
    ids = three_senders_due(clock)
    late = clock_module.now() - timedelta(seconds=0.5)
    Sender.update(last_send_at=late).where(Sender.name == "whatsapp:s1").execute()
    row = OutboxMessage.get_by_id(ids["whatsapp:s1"][1])
    statements.clear()
    # When its gate is passed, knowing the refusal
    deferral = pacing.gate(row, clock_module.now(), refused=True)
    # Then it waits for the sender's quiet time, read at once: no second ask, no write
    assert deferral is not None
    assert deferral.until == late + SPACING
    assert sender_updates(statements) == []
    # Whereas a row not refused asks first, in vain
    statements.clear()
    assert pacing.gate(row, clock_module.now()) == deferral
    assert len(sender_updates(statements)) == 1


def test_a_paused_sender_is_left_out(db, clock, env):
    # Given two quiet senders, one of them paused for an hour
    now = clock_module.now()
    for name in ("whatsapp:p0", "whatsapp:p1"):
        senders.get_sender(name, "whatsapp")
    senders.pause("whatsapp:p1", now + timedelta(hours=1), "HTTP 463")
    quiet_before = dict.fromkeys(("whatsapp:p0", "whatsapp:p1"), now - SPACING)
    # When both ask to go
    let_go = sender_sql.go_if_quiet_many(quiet_before, now)
    # Then only the one not paused goes
    assert let_go == {"whatsapp:p0"}
    assert last_send("whatsapp:p0") == now
    assert last_send("whatsapp:p1") is None


def test_the_rows_let_go_together_are_sent_first(db, clock, env, whatsapp):
    # Given a window whose first row takes its own turn (a row of another sender, holding no
    # slot), then two rows whose turns are taken together
    ids = three_senders_due(clock)
    (alone,) = queue_whatsapp(1, prefix="alone")
    window = [alone, ids["whatsapp:s0"][1], ids["whatsapp:s1"][1]]
    # When the window is delivered
    delivery.deliver_many(window)
    # Then the two let go together went first, one after the other, and the row on its own last
    sent_now = [m.idempotency_key for when, m in whatsapp.sent if when == clock_module.now()]
    assert sent_now == ["a0-1", "a1-1", "alone-0"]


def test_a_lone_due_row_takes_its_own_turn(db, clock, env, whatsapp, statements):
    # Given one sender's row whose slot has come, alone in its window
    ids = three_senders_due(clock)
    row = OutboxMessage.get_by_id(ids["whatsapp:s0"][1])
    statements.clear()
    # When the window's turns are taken: none is, the row's own turn costs as much
    assert pacing.take_turns([row], clock_module.now()) == pacing.WindowTurns()
    assert statements == []


def test_only_the_first_row_of_a_sender_in_a_window_takes_a_turn_there(db, clock, env):
    # Given two rows of one sender whose slots have both come, and a row of another sender
    ids = three_senders_due(clock)
    first = OutboxMessage.get_by_id(ids["whatsapp:s0"][1])
    again = OutboxMessage.get_by_id(ids["whatsapp:s0"][1])
    other = OutboxMessage.get_by_id(ids["whatsapp:s1"][1])
    # When the turns are taken for the three
    turns = pacing.take_turns([first, again, other], clock_module.now())
    # Then one turn each sender: the second row of the first sender takes its turn as it goes
    assert sorted(turns.taken) == sorted({first.id, other.id})


def test_a_turn_taken_before_slow_sends_moves_to_the_send_start(db, clock, env, monkeypatch):
    # Given three senders with a row due, and a channel whose sends take 40 ms each
    channel = SlowChannel(clock, timedelta(milliseconds=40))
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: channel)
    ids = three_senders_due(clock)
    # When one window delivers the three rows
    delivery.deliver_many([rows[1] for rows in ids.values()])
    # Then each went, and each sender's last send is when its own send ended (or started):
    # never the time the turns were taken, 40 or 80 ms before the second and third sends
    assert len(channel.sent) == 3 + 3
    for (started, message), name in zip(channel.sent[3:], sorted(ids), strict=True):
        assert message.idempotency_key == f"a{name[-1]}-1"
        assert last_send(name) >= started


def test_keep_turn_keeps_a_turn_a_moment_then_moves_it(db, clock, env):
    # Given a row whose turn was taken now
    ids = three_senders_due(clock)
    rows = [OutboxMessage.get_by_id(rows[1]) for rows in ids.values()]
    taken = clock_module.now()
    assert len(pacing.take_turns(rows, taken).taken) == 3
    row = rows[0]
    # When its send starts within TURN_KEPT_FOR, the turn counts from when it was taken
    assert pacing.keep_turn(row, taken, taken + pacing.TURN_KEPT_FOR) == taken
    # When it starts later, the turn is moved to its start
    later = taken + timedelta(milliseconds=300)
    assert pacing.keep_turn(row, taken, later) == later
    assert last_send("whatsapp:s0") == later


def test_a_turn_let_go_to_another_send_meanwhile_is_not_kept(db, clock, env):
    # Given a row whose turn was taken, and another send of its sender let go since
    ids = three_senders_due(clock)
    rows = [OutboxMessage.get_by_id(rows[1]) for rows in ids.values()]
    taken = clock_module.now()
    pacing.take_turns(rows, taken)
    meanwhile = taken + timedelta(milliseconds=100)
    Sender.update(last_send_at=meanwhile).where(Sender.name == "whatsapp:s0").execute()
    # When its send starts 300 ms after its turn was taken
    kept = pacing.keep_turn(rows[0], taken, taken + timedelta(milliseconds=300))
    # Then the turn is not the row's any more, and the other send's time stands
    assert kept is None
    assert last_send("whatsapp:s0") == meanwhile


def test_workers_taking_the_same_turns_at_once_let_each_sender_go_once(db, clock, env):
    # Given three senders with a row due
    ids = three_senders_due(clock)
    due = [rows[1] for rows in ids.values()]
    now = clock_module.now()
    let_go: list[int] = []

    def work() -> None:
        rows = [OutboxMessage.get_by_id(i) for i in due]
        let_go.extend(pacing.take_turns(rows, now).taken)

    # When eight workers take the turns of the same rows at the same moment
    failures = at_once(8, work)
    # Then each sender's turn went to one worker only
    assert failures == []
    assert sorted(let_go) == sorted(due)


def test_rows_delivered_by_many_workers_at_once_are_each_sent_once_and_spaced(
    db, clock, env, whatsapp
):
    # Given three senders paced at exactly 2 s with a row due and, behind it, four more each
    ids = three_senders_due(clock)
    more = {}
    for n, name in enumerate(sorted(ids)):
        account_id = Sender.get(Sender.name == name).account_id
        messages = [Outgoing(f"b{n}-{k}", "whatsapp", f"+3362{n}00000{k}", "hi") for k in range(4)]
        more[name] = [row.id for row in queue_messages(messages, account_id=account_id)]
    everything = [i for name in ids for i in (*ids[name], *more[name])]
    # When four workers deliver every row at once, then the rest is played out
    at_once(4, lambda: delivery.deliver_many(everything))
    play_deliveries(everything, clock)
    # Then each row was sent once, and each sender's sends are 2 s apart at least
    keys = [m.idempotency_key for _, m in whatsapp.sent]
    assert len(keys) == len(set(keys)) == 3 * 6
    assert OutboxMessage.select().where(OutboxMessage.status == SENT).count() == 18
    for name in ids:
        times = [when for when, m in whatsapp.sent if m.sender == name]
        assert len(times) == 6
        assert all(gap >= 2 for gap in gaps(times)), gaps(times)


def test_the_read_before_the_claim_keeps_each_sender_and_account_it_read(
    db, clock, env, whatsapp, statements
):
    # Given three senders with a row due, and nothing kept of them
    ids = three_senders_due(clock)
    due = [rows[1] for rows in ids.values()]
    read_cache.forget()
    statements.clear()
    # When one window delivers the three rows
    delivery.deliver_many(due)
    # Then neither a sender nor an account was read on its own: the read before the claim
    # read them with the rows
    own_reads = [
        sql
        for sql in statements
        if sql.lstrip().upper().startswith("SELECT")
        and ('FROM "SENDER"' in sql.upper() or 'FROM "ACCOUNT"' in sql.upper())
    ]
    assert own_reads == []
    assert len(whatsapp.sent) == 3 + 3


@pytest.fixture(autouse=True)
def fresh_reads():
    """Nothing kept from one test to the next."""
    read_cache.forget()
    yield
    read_cache.forget()


@pytest.fixture
def sends_15_ms_apart(monkeypatch: pytest.MonkeyPatch) -> timedelta:
    """The time from one send's start to the next in a window, as this process measured it."""
    monkeypatch.setattr(pacing, "_send_interval", 0.015)
    return timedelta(milliseconds=15)


def test_a_windows_turns_are_taken_for_when_each_row_is_expected_to_start(
    db, clock, env, sends_15_ms_apart
):
    # Given three senders with a row due, and sends in a window lately 15 ms apart
    ids = three_senders_due(clock)
    rows = [OutboxMessage.get_by_id(rows[1]) for rows in ids.values()]
    now = clock_module.now()
    # When their turns are taken together
    turns = pacing.take_turns(rows, now)
    # Then each is taken for when its row is expected to start: the first now, the second
    # 15 ms later, the third 30 ms later, and each sender records that as its last send
    step = sends_15_ms_apart
    expected = [now, now + step, now + 2 * step]
    assert [turns.taken[row.id] for row in rows] == expected
    assert [clock_module.as_utc(last_send(name)) for name in sorted(ids)] == expected


def test_a_turn_is_taken_at_most_40_ms_ahead(db, clock, env, monkeypatch):
    # Given four senders with a row due, and sends in a window lately 30 ms apart
    monkeypatch.setattr(pacing, "_send_interval", 0.030)
    ids = accounts_with_senders(4, rows=2, spacing=2)
    delivery.deliver_many([i for rows in ids.values() for i in rows])
    clock.advance(SPACING)
    rows = [OutboxMessage.get_by_id(rows[1]) for rows in ids.values()]
    now = clock_module.now()
    # When their turns are taken together
    turns = pacing.take_turns(rows, now)
    # Then the third and fourth are taken 40 ms ahead, not 60 and 90: a row that late moves
    # its turn to its start, as before
    ahead = [(turns.taken[row.id] - now).total_seconds() for row in rows]
    assert ahead == [0.0, 0.03, 0.04, 0.04]


def test_a_send_starting_before_its_expected_start_keeps_its_turn(
    db, clock, env, sends_15_ms_apart
):
    # Given a row whose turn was taken for 30 ms from now (third in its window)
    ids = three_senders_due(clock)
    rows = [OutboxMessage.get_by_id(rows[1]) for rows in ids.values()]
    now = clock_module.now()
    taken = pacing.take_turns(rows, now).taken[rows[2].id]
    assert taken == now + 2 * sends_15_ms_apart
    # When its send starts earlier than that (the sends before it were quick)
    kept = pacing.keep_turn(rows[2], taken, now + timedelta(milliseconds=5))
    # Then the turn is kept, counting from the later time: the sender's next send waits its
    # spacing from then, so the far end sees a longer gap, never a shorter one
    assert kept == taken
    assert clock_module.as_utc(last_send("whatsapp:s2")) == taken
    # And one starting more than TURN_KEPT_FOR after it moves the turn to its start
    late = taken + pacing.TURN_KEPT_FOR + timedelta(milliseconds=1)
    assert pacing.keep_turn(rows[2], taken, late) == late


def test_the_window_measures_how_far_apart_its_sends_start(db, clock, env, monkeypatch):
    # Given a channel whose sends take 20 ms each, and three senders with a row due
    channel = SlowChannel(clock, timedelta(milliseconds=20))
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: channel)
    ids = three_senders_due(clock)
    pacing.forget()  # what the senders' first sends measured is dropped
    # When one window sends the three rows let go together, one after another
    delivery.deliver_many([rows[1] for rows in ids.values()])
    # Then the next windows expect what it measured: two intervals of 20 ms, a tenth of each
    # into the moving average, 3.8 ms a place
    assert pacing._send_interval == pytest.approx(0.0038)


def test_turns_taken_ahead_never_bring_a_senders_sends_closer(
    db, clock, env, whatsapp, monkeypatch
):
    # Given three senders paced at exactly 2 s with five rows each, and sends in a window
    # lately 30 ms apart
    monkeypatch.setattr(pacing, "_send_interval", 0.030)
    ids = accounts_with_senders(3, rows=5, spacing=2)
    every = [i for rows in ids.values() for i in rows]
    # When every row is delivered as the broker would, each due window's turns taken together
    play_deliveries(every, clock)
    # Then each row went once, and each sender's sends are its spacing and the guard apart
    assert sorted(m.idempotency_key for _, m in whatsapp.sent) == sorted(
        f"a{n}-{k}" for n in range(3) for k in range(5)
    )
    for name in ids:
        times = [when for when, m in whatsapp.sent if m.sender == name]
        assert len(times) == 5
        assert all(gap >= SPACING.total_seconds() for gap in gaps(times)), (name, gaps(times))
