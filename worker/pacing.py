"""The gate every claimed row passes just before its send: sending hours, a paused sender, and
a paced sender's turn. A row that may not go yet is deferred, never held in a thread: it goes
back to `queued` and its delivery is put on the broker with a delay to the time it may go.

Rules (docs/operating.md, "Pacing: senders, spacing, sending hours"):
- hours: the campaign's override, else the account's, else the sender's, else the default
  hours for a message of an account or an engagement goodbye; a message of no account sent by
  hand has none. They are read in the account's zone (OUTREACH_SENDING_TIMEZONE without one).
- a paused sender's rows wait for the end of the pause; none fails.
- a paced sender's rows take turns (worker.senders); an unpaced one sends in windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo

from storage import clock
from storage.db import database
from storage.models.accounts import Account
from storage.models.outbox import OutboxMessage
from storage.models.senders import Sender
from storage.settings import Settings, get_settings
from worker import outbox_sql, read_cache, sender_sql
from worker.channels.base import SendError
from worker.delivery_queue import (
    PACED_QUEUE,
    clock_millis,
    enqueue_later_on,
    lane_of,
    move_next_rows_later,
)
from worker.hours import ALWAYS, SendingHours, parse_hours
from worker.logging import get_logger
from worker.senders import (
    SPACING_GUARD,
    Pacing,
    default_sender,
    get_sender,
    pacing_of,
    pause,
    reserve_slots,
    slots_after,
    take_turn,
)
from worker.senders import send_ended as senders_send_ended

log = get_logger("outreach.pacing")

# Sources whose messages follow the default hours even without an account.
HOURS_WITHOUT_ACCOUNT = frozenset({"engagement"})
# Embedded mode (the in-process broker, whose delays run on the wall clock while its caller
# waits): a deferral longer than this is left to the relay, which enqueues the row once due.
EMBEDDED_MAX_DELAY_MS = 120_000
# Why a row waits, as its deferral records it.
OUTSIDE_HOURS = "outside sending hours"
# A row whose sender is busy is put back unclaimed (not_yet) for at most this long; a longer
# wait is written on the row by the usual deferral, which the relay reads.
NOT_YET_AT_MOST = timedelta(seconds=60)
# A turn taken for a window's row before its first send (take_turns) is its own for this long
# after the start it was taken for; a send starting later moves it to its start. Half the
# guard: the other half covers the request reaching the far end, so the far end never sees a
# shorter gap.
TURN_KEPT_FOR = SPACING_GUARD / 2
# A window's turns are taken for the time each row is expected to start (the sends before it
# in the window take time), at most this long after they are taken: a send starting a little
# earlier than expected only makes its sender's next turn that much later, which the slots'
# slack covers (worker.senders.SLOT_SLACK_SHARE).
TURN_AHEAD_AT_MOST = timedelta(milliseconds=40)
# How much of each new measure of the time from one send's start to the next, in a window, the
# expected time takes (a moving average, per process).
SEND_INTERVAL_WEIGHT = 0.1
# A send later than its slot (and its slack) allowed for moves its sender's next waiting row to
# come due this long before its sender is quiet again: that row's own latency (its move onto
# the queue, its fetch) most often makes up the rest, so it finds the sender quiet.
NEXT_ROW_AHEAD = timedelta(milliseconds=30)


@dataclass(frozen=True)
class Deferral:
    """A claimed row put back: due again at `until`, holding the slot `hold` (or none)."""

    outbox_id: int
    attempt: int
    until: datetime
    hold: datetime | None
    reason: str
    # Whose row it is: its delayed delivery goes on that account's lane.
    account_id: int | None = None
    # The paced sender whose slot it holds: kept with the sender's other slots (its next
    # waiting row moves when a send of the sender is late, next_rows_later).
    sender_id: int | None = None


@dataclass(frozen=True)
class _SenderView:
    pacing: Pacing
    paused_until: datetime | None
    sending_hours: str | None
    sender_id: int


# The time from one send's start to the next in a window, as lately measured in this process.
_send_interval = 0.0


def forget(name: str | None = None) -> None:
    """Drop what was read (one sender's view), or everything read and measured."""
    global _send_interval
    if name is None:
        read_cache.forget()
        _send_interval = 0.0
    else:
        read_cache.forget("sender", name)


def sender_name(row: OutboxMessage, settings: Settings) -> str:
    return str(row.sender) if row.sender else default_sender(row.channel, settings)


def sender_view(name: str, channel: str, settings: Settings, fresh: bool = False) -> _SenderView:
    """The sender's settings and pause as the gate reads them (cached: worker.read_cache;
    read now when `fresh`)."""

    def read() -> _SenderView:
        return _view_of(get_sender(name, channel), settings)

    if fresh:
        read_cache.forget("sender", name)
    view: _SenderView = read_cache.cached("sender", name, read)
    return view


def _view_of(sender: Sender, settings: Settings) -> _SenderView:
    paused = clock.as_utc(sender.paused_until) if sender.paused_until else None
    return _SenderView(pacing_of(sender, settings), paused, sender.sending_hours, int(sender.id))


def _keep_read(row: sender_sql.QueuedRow, settings: Settings) -> None:
    """The sender and the account the read before a claim read with the row, kept for the
    checks after it (the claimed rows' gate and slots) instead of each read again."""
    if row.sender_row is not None:
        read_cache.keep("sender", row.sender_row.name, _view_of(row.sender_row, settings))
    if row.account is not None:
        read_cache.keep("account", row.account_id, row.account)


@lru_cache(maxsize=4)
def _account_sql(param: str) -> str:
    # Written out: a delivery window reads it for each account it has not read lately.
    return (
        f'SELECT "{Account.timezone.column_name}", "{Account.sending_hours.column_name}" '
        f'FROM "{Account._meta.table_name}" WHERE "{Account.id.column_name}" = {param}'
    )


def _account(account_id: int) -> tuple[str, str | None] | None:
    def read() -> tuple[str, str | None] | None:
        sql = _account_sql(str(database.obj.param))
        found = database.execute_sql(sql, [account_id]).fetchone()
        return None if found is None else (str(found[0]), found[1])

    account: tuple[str, str | None] | None = read_cache.cached("account", account_id, read)
    return account


class _Routed(Protocol):
    """What a row's sending hours depend on (an outbox row, or a row read before its claim)."""

    @property
    def account_id(self) -> int | None: ...
    @property
    def sending_hours(self) -> str | None: ...
    @property
    def source(self) -> str: ...


# A row given a slot: an outbox row (reserve) or one read before its claim (not_yet).
R = TypeVar("R")


def hours_for(
    row: _Routed, sender_hours: str | None, settings: Settings
) -> tuple[SendingHours, ZoneInfo]:
    """The row's sending hours and the zone they are read in."""
    account = _account(int(row.account_id)) if row.account_id else None
    zone = ZoneInfo(account[0] if account else settings.sending_timezone)
    spec = row.sending_hours or (account[1] if account else None) or sender_hours
    if spec is None:
        in_hours = account is not None or row.source in HOURS_WITHOUT_ACCOUNT
        spec = settings.sending_hours if in_hours else ALWAYS
    return _parsed(spec), zone


def _parsed(spec: str) -> SendingHours:
    hours: SendingHours = read_cache.cached("hours", spec, lambda: parse_hours(spec))
    return hours


def gate(
    row: OutboxMessage, now: datetime, settings: Settings | None = None, refused: bool = False
) -> Deferral | None:
    """None when the claimed row may go out now; else when it may. `refused`: the turn the row
    asked for a moment ago was refused (take_turns), so its sender is read at once, without
    asking again first."""
    settings = settings or get_settings()
    name = sender_name(row, settings)
    view = sender_view(name, row.channel, settings)
    hours, zone = hours_for(row, view.sending_hours, settings)
    if not hours.always:
        opening = hours.next_opening(now, zone)
        if opening > now:
            return Deferral(row.id, row.attempts, opening, None, OUTSIDE_HOURS, row.account_id)
    if not view.pacing.paced:
        if view.paused_until is not None and view.paused_until > now:
            # A pause read a while ago may have been lifted since (`sender resume` in another
            # process): read it again before deferring a row to its end. (A paced sender's
            # pause is checked by its turn's own statement.)
            view = sender_view(name, row.channel, settings, fresh=True)
        if view.paused_until is not None and view.paused_until > now:
            return Deferral(
                row.id, row.attempts, view.paused_until, None, "sender paused", row.account_id
            )
        return None
    held = clock.as_utc(row.not_before) if row.not_before else None
    turn = take_turn(name, row.channel, held, now, None if refused else view.pacing)
    if turn.go:
        return None
    assert turn.until is not None
    return Deferral(
        row.id, row.attempts, turn.until, turn.hold, turn.reason, row.account_id, view.sender_id
    )


@dataclass(frozen=True)
class WindowTurns:
    """The turns a window's rows asked for together: the rows let go, each with the time its
    turn was taken for (when it is expected to start), and the rows refused one (their sender
    not quiet, or paused)."""

    taken: dict[int, datetime] = field(default_factory=dict)
    refused: frozenset[int] = frozenset()


def take_turns(
    rows: Sequence[OutboxMessage], now: datetime, settings: Settings | None = None
) -> WindowTurns:
    """The turns of a window's rows whose slot has come, taken together: for the first such row
    of each paced sender (hours open), one statement for them all where each would take its
    own (take_turn). A row refused takes its turn as it goes (gate), its sender read at once.
    Only for two senders or more: a lone row's own turn costs as much."""
    settings = settings or get_settings()
    first: dict[str, OutboxMessage] = {}
    quiet_before: dict[str, datetime] = {}
    for row in rows:
        if row.not_before is None or clock.as_utc(row.not_before) > now:
            continue  # no slot, or not yet (and rows of unpaced senders hold none)
        name = sender_name(row, settings)
        if name in first:
            continue
        view = sender_view(name, row.channel, settings)
        if not view.pacing.paced:
            continue
        hours, zone = hours_for(row, view.sending_hours, settings)
        if not hours.always and hours.next_opening(now, zone) > now:
            continue
        first[name] = row
        spacing = timedelta(seconds=view.pacing.min_spacing)
        quiet_before[name] = now - spacing - SPACING_GUARD
    if len(first) < 2:
        return WindowTurns()
    # The rows let go are sent first, in this order: each is expected to start after those
    # before it.
    step = timedelta(seconds=_send_interval)
    starts = {name: now + min(n * step, TURN_AHEAD_AT_MOST) for n, name in enumerate(first)}
    let_go = sender_sql.go_if_quiet_many(quiet_before, now, starts)
    refused = frozenset(row.id for name, row in first.items() if name not in let_go)
    return WindowTurns({first[name].id: starts[name] for name in let_go}, refused)


def note_send_interval(seconds: float) -> None:
    """A window's send started `seconds` after the one before it (delivery)."""
    global _send_interval
    _send_interval += SEND_INTERVAL_WEIGHT * (seconds - _send_interval)


def keep_turn(
    row: OutboxMessage, taken: datetime, now: datetime, settings: Settings | None = None
) -> datetime | None:
    """When the turn taken for the row for `taken` (take_turns) counts from, for a send
    starting now: `taken` itself before it or a moment after it; later (the window's sends
    before it were slower than expected), the turn is moved to now, unless another send of its
    sender was let go meanwhile (None: the row takes its turn again, gate)."""
    if now - taken <= TURN_KEPT_FOR:
        return taken
    settings = settings or get_settings()
    return now if sender_sql.move_turn(sender_name(row, settings), taken, now) else None


def reserve(
    rows: Sequence[OutboxMessage], now: datetime, settings: Settings | None = None
) -> set[int]:
    """Slots for a window's rows that have none, taken together for each paced sender with
    several of them (one read and one write, not two statements a row); each such row holds
    its slot from then on (`not_before`, in memory until its deferral writes it). Rows outside
    their hours, or of a paused sender, take none. Returns the ids of the rows given one."""
    settings = settings or get_settings()
    waiting: dict[tuple[str, str], list[OutboxMessage]] = {}
    for row in rows:
        if row.not_before is not None:
            continue
        name = sender_name(row, settings)
        view = sender_view(name, row.channel, settings)
        if view.pacing.paced and _may_take_a_slot(row, view, now, settings):
            waiting.setdefault((name, row.channel), []).append(row)
    reserved: set[int] = set()
    for row, slot in _slots_for(waiting, now):
        row.not_before = slot
        reserved.add(row.id)
    return reserved


def not_yet(
    outbox_ids: Sequence[int], now: datetime, settings: Settings | None = None
) -> list[Deferral]:
    """The rows among `outbox_ids` that may not go yet, each to be put back as it is (never
    claimed) until it may:

    - a row whose slot has come but whose sender is not quiet yet (its last send, or a row
      before it in `outbox_ids`, too recent): until the sender is quiet. Rows held on one sender
      often come due a little out of step (one sent late makes the next early for it), so this
      is the common case of a paced sender, not a rare one;
    - rows holding no slot, several of one paced sender: they are given their slots (the
      sender's next ones, as `reserve` gives them), written on the rows in one statement, and
      wait for them, but for a first slot that has come, which is claimed with the others.

    One read for them all. Claimed, each of these rows would take its turn only to be written
    back: two writes of the row where one, or none, does. Anything else (a paused sender, a
    row outside its hours, a row late by a spacing, a long wait, a lone row) is claimed and
    decided by its turn, as before.
    """
    settings = settings or get_settings()
    waiting = []
    # When each sender may send again, for the rows after the first of its rows here.
    busy: dict[str, datetime] = {}
    fresh: dict[tuple[str, str], list[sender_sql.QueuedRow]] = {}
    late: dict[str, list[tuple[sender_sql.QueuedRow, datetime]]] = {}
    for row in sender_sql.queued_rows(outbox_ids):
        _keep_read(row, settings)
        name = row.sender or default_sender(row.channel, settings)
        view = sender_view(name, row.channel, settings)
        if not view.pacing.paced:
            continue
        if row.not_before is None:
            if not _may_take_a_slot(row, view, now, settings):
                continue
            fresh.setdefault((name, row.channel), []).append(row)
            continue
        if row.last_send_at is None or row.not_before > now:
            continue
        if row.paused_until is not None and row.paused_until > now:
            continue
        spacing = timedelta(seconds=view.pacing.min_spacing)
        quiet_from = busy.get(name, row.last_send_at + spacing + SPACING_GUARD)
        wait = quiet_from - now
        if wait <= timedelta(0):
            # This row takes the turn; the sender's next rows here wait a spacing after it.
            busy[name] = now + spacing + SPACING_GUARD
            continue
        if wait > NOT_YET_AT_MOST:
            continue  # the turn decides
        if now - row.not_before >= spacing and wait >= spacing / 2:
            if row.sender_row is not None:
                late.setdefault(name, []).append((row, quiet_from))
            continue
        waiting.append(_put_back(row, quiet_from, row.not_before, view.sender_id))
    return waiting + _slots_ahead(fresh, now, settings) + _slots_later(late, settings)


def _may_take_a_slot(row: _Routed, view: _SenderView, now: datetime, settings: Settings) -> bool:
    """Whether a row holding no slot may be given one now: its sender not paused, its hours
    open (else its turn defers it to the end of the pause, or to the opening)."""
    if view.paused_until is not None and view.paused_until > now:
        return False
    hours, zone = hours_for(row, view.sending_hours, settings)
    return hours.always or hours.next_opening(now, zone) <= now


def _slots_for(
    groups: Mapping[tuple[str, str], list[R]], now: datetime
) -> list[tuple[R, datetime]]:
    """Each row of a group of several rows of one sender, (name, channel), with the slot handed
    out to it: the group's slots taken together (one read and one write of the sender). A lone
    row takes its turn as it goes, in as few statements; a paused sender hands out none."""
    given: list[tuple[R, datetime]] = []
    for (name, channel), rows in groups.items():
        if len(rows) < 2:
            continue
        slots = reserve_slots(name, channel, len(rows), now)
        if isinstance(slots, list):
            given += zip(rows, slots, strict=True)
    return given


def _slots_ahead(
    fresh: Mapping[tuple[str, str], list[sender_sql.QueuedRow]],
    now: datetime,
    settings: Settings,
) -> list[Deferral]:
    """Slots for rows holding none, several of one sender (_slots_for), written on the rows in
    one statement; the rows whose slot is to come wait for it."""
    given = _slots_for(fresh, now)
    held = outbox_sql.hold_queued([(row.outbox_id, slot) for row, slot in given])
    sender_of = {
        row.outbox_id: sender_view(name, channel, settings).sender_id
        for (name, channel), rows in fresh.items()
        for row in rows
    }
    return [
        _put_back(row, slot, slot, sender_of[row.outbox_id])
        for row, slot in given
        if row.outbox_id in held and slot > now
    ]


def _slots_later(
    late: Mapping[str, list[tuple[sender_sql.QueuedRow, datetime]]], settings: Settings
) -> list[Deferral]:
    """Rows late by a spacing or more for their slot while their sender is not quiet (the
    workers fell behind, so the sender's next rows are due as well), each with the time its
    sender is quiet: each takes the sender's next free slot from then, as its turn would give
    it, rather than all wait for the same moment. Written on the sender if its row is still as
    the read before the claim found it (else the rows are left to their claim), then on the
    rows in one statement."""
    moves: list[tuple[sender_sql.QueuedRow, datetime]] = []
    for name, rows in late.items():
        sender = rows[0][0].sender_row
        assert sender is not None
        pacing = sender_view(name, sender.channel, settings).pacing
        held = [clock.as_utc(row.not_before) for row, _ in rows if row.not_before]
        slots, values = slots_after(sender, pacing, rows[0][1], held, settings)
        if sender_sql.write_if_unchanged(int(sender.id), int(sender.version), values):
            moves += zip((row for row, _ in rows), slots, strict=True)
    moved = outbox_sql.move_held(
        [(row.outbox_id, slot, row.not_before) for row, slot in moves if row.not_before]
    )
    return [
        _put_back(row, slot, slot, None if row.sender_row is None else int(row.sender_row.id))
        for row, slot in moves
        if row.outbox_id in moved
    ]


def _put_back(
    row: sender_sql.QueuedRow, until: datetime, slot: datetime | None, sender_id: int | None
) -> Deferral:
    """A row put back unclaimed until `until`, holding its sender's `slot`."""
    return Deferral(row.outbox_id, row.attempts, until, slot, "spacing", row.account_id, sender_id)


def send_ended(row: OutboxMessage, granted: datetime, settings: Settings | None = None) -> datetime:
    """After a send on a paced sender, let go at `granted`: a send that took longer than the
    guard the turns keep (worker.senders.SPACING_GUARD) makes the sender's quiet time count
    from its end, so the far end never sees a shorter gap; a quicker one is covered by the
    guard, and costs no statement. Returns the time the sender's quiet time counts from."""
    ended = clock.now()
    if ended - granted <= SPACING_GUARD:
        return granted
    settings = settings or get_settings()
    name = sender_name(row, settings)
    if sender_view(name, row.channel, settings).pacing.paced:
        senders_send_ended(name, ended)
    return ended


def next_rows_later(
    sent: Sequence[tuple[OutboxMessage, datetime]], settings: Settings | None = None
) -> None:
    """After a window's sends, each (row, the time its sender's quiet time counts from, as
    send_ended returned it): for a row of a paced sender that held a slot and went later than
    its slot's slack allowed for, the sender's next waiting row comes due that much later, less
    NEXT_ROW_AHEAD (worker.delivery_queue.move_next_rows_later). It would otherwise come due
    while its sender is not quiet yet, and be put back once more (not_yet); a sender late once
    would stay late, each of its rows going round twice."""
    settings = settings or get_settings()
    moves = []
    for row, quiet_counts_from in sent:
        if row.not_before is None:
            continue
        view = sender_view(sender_name(row, settings), row.channel, settings)
        slot = clock.as_utc(row.not_before)
        late = quiet_counts_from - slot - view.pacing.slack - NEXT_ROW_AHEAD
        if view.pacing.paced and late > timedelta(0):
            moves.append((view.sender_id, clock_millis(slot), _ms(late)))
    if moves:
        move_next_rows_later(moves)


def _ms(delta: timedelta) -> int:
    return math.ceil(delta.total_seconds() * 1000)


def enqueue_deferred(deferrals: Sequence[Deferral]) -> None:
    """The deferred rows' deliveries, each delayed to its time: a row holding a slot on the
    paced queue (worker.delivery_queue.PACED_QUEUE), any other on its account's lane (on Redis,
    rows of a queue due together leave as one message). Their rows say when they are due
    (`enqueued_at`), so the relay leaves them be until well after that, and a lost message is
    enqueued again by the relay."""
    from worker.broker import is_embedded

    by_time: dict[tuple[datetime, str], list[int]] = {}
    held: list[tuple[int, int, int]] = []
    for deferral in deferrals:
        queue = PACED_QUEUE if deferral.hold is not None else lane_of(deferral.account_id)
        by_time.setdefault((deferral.until, queue), []).append(deferral.outbox_id)
        if deferral.hold is not None and deferral.sender_id is not None:
            held.append((deferral.sender_id, deferral.outbox_id, clock_millis(deferral.hold)))
    now = clock.now()
    embedded = is_embedded()
    deliveries = []
    for (until, queue), ids in sorted(by_time.items(), key=lambda item: item[0][0]):
        # Rounded up: a delivery that fired a moment before its time would be deferred again.
        delay = max(0, _ms(until - now))
        if embedded and delay > EMBEDDED_MAX_DELAY_MS:
            log.info("pacing.left_to_relay", count=len(ids), until=until.isoformat())
            continue
        deliveries.append((ids, delay or None, queue))
    # One round trip for every delayed delivery of the window (and the slots they hold).
    enqueue_later_on(deliveries, held)


# WAHA's answer for "stop contacting new people for a while".
WAHA_SLOW_DOWN = 463
# A rate limit; it pauses the sender only when it says for how long (Retry-After).
TOO_MANY_REQUESTS = 429


def pause_on_signal(
    row: OutboxMessage, error: SendError, settings: Settings | None = None
) -> Deferral | None:
    """A provider's signal to stop (WAHA 463, HTTP 429 with Retry-After) pauses the row's
    sender and defers the row to the end of the pause; None for any other error."""
    settings = settings or get_settings()
    if error.status_code == WAHA_SLOW_DOWN and row.channel == "whatsapp":
        seconds = float(settings.waha_463_pause_seconds)
    elif error.status_code == TOO_MANY_REQUESTS and error.retry_after is not None:
        seconds = error.retry_after
    else:
        return None
    now = clock.now()
    until = now + timedelta(seconds=seconds)
    name = sender_name(row, settings)
    reason = f"HTTP {error.status_code} at {now.isoformat()}: {error}"[:500]
    pause(name, until, reason)
    forget(name)
    log.warning("sender.paused", sender=name, until=until.isoformat(), outbox_id=row.id)
    reason = f"sender paused: HTTP {error.status_code}"
    return Deferral(row.id, row.attempts, until, None, reason, row.account_id)
