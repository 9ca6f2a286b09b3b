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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from storage import clock
from storage.db import database
from storage.models.accounts import Account
from storage.models.outbox import OutboxMessage
from storage.models.senders import Sender
from storage.settings import Settings, get_settings
from worker import read_cache
from worker.channels.base import SendError
from worker.delivery_queue import enqueue_many_later
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


@dataclass(frozen=True)
class _SenderView:
    pacing: Pacing
    paused_until: datetime | None
    sending_hours: str | None


def forget(name: str | None = None) -> None:
    """Drop what was read (one sender's view, or everything)."""
    if name is None:
        read_cache.forget()
    else:
        read_cache.forget("sender", name)


def sender_name(row: OutboxMessage, settings: Settings) -> str:
    return str(row.sender) if row.sender else default_sender(row.channel, settings)


def sender_view(name: str, channel: str, settings: Settings, fresh: bool = False) -> _SenderView:
    """The sender's settings and pause as the gate reads them (cached: worker.read_cache;
    read now when `fresh`)."""

    def read() -> _SenderView:
        sender: Sender = get_sender(name, channel)
        paused = clock.as_utc(sender.paused_until) if sender.paused_until else None
        return _SenderView(pacing_of(sender, settings), paused, sender.sending_hours)

    if fresh:
        read_cache.forget("sender", name)
    view: _SenderView = read_cache.cached("sender", name, read)
    return view


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


def hours_for(
    row: OutboxMessage, sender_hours: str | None, settings: Settings
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


def gate(row: OutboxMessage, now: datetime, settings: Settings | None = None) -> Deferral | None:
    """None when the claimed row may go out now; else when it may."""
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
    turn = take_turn(name, row.channel, held, now, view.pacing)
    if turn.go:
        return None
    assert turn.until is not None
    return Deferral(row.id, row.attempts, turn.until, turn.hold, turn.reason, row.account_id)


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
        if not view.pacing.paced or (view.paused_until is not None and view.paused_until > now):
            continue
        hours, zone = hours_for(row, view.sending_hours, settings)
        if not hours.always and hours.next_opening(now, zone) > now:
            continue
        waiting.setdefault((name, row.channel), []).append(row)
    reserved: set[int] = set()
    for (name, channel), group in waiting.items():
        if len(group) < 2:
            continue  # a lone row takes its turn as it goes, in as few statements
        slots = reserve_slots(name, channel, len(group), now)
        if isinstance(slots, list):
            for row, slot in zip(group, slots, strict=True):
                row.not_before = slot
                reserved.add(row.id)
    return reserved


def send_ended(row: OutboxMessage, granted: datetime, settings: Settings | None = None) -> None:
    """After a send on a paced sender, let go at `granted`: a send that took longer than the
    guard the turns keep (worker.senders.SPACING_GUARD) makes the sender's quiet time count
    from its end, so the far end never sees a shorter gap; a quicker one is covered by the
    guard, and costs no statement."""
    ended = clock.now()
    if ended - granted <= SPACING_GUARD:
        return
    settings = settings or get_settings()
    name = sender_name(row, settings)
    if sender_view(name, row.channel, settings).pacing.paced:
        senders_send_ended(name, ended)


def enqueue_deferred(deferrals: Sequence[Deferral]) -> None:
    """The deferred rows' deliveries, each delayed to its time, on its account's lane (on
    Redis, rows of a lane due together leave as one message). Their rows say when they are due
    (`enqueued_at`), so the relay leaves them be until well after that, and a lost message is
    enqueued again by the relay."""
    from worker.broker import is_embedded

    by_time: dict[tuple[datetime, int | None], list[int]] = {}
    for deferral in deferrals:
        by_time.setdefault((deferral.until, deferral.account_id), []).append(deferral.outbox_id)
    now = clock.now()
    embedded = is_embedded()
    deliveries = []
    for (until, account_id), ids in sorted(by_time.items(), key=lambda item: item[0][0]):
        # Rounded up: a delivery that fired a moment before its time would be deferred again.
        delay = max(0, math.ceil((until - now).total_seconds() * 1000))
        if embedded and delay > EMBEDDED_MAX_DELAY_MS:
            log.info("pacing.left_to_relay", count=len(ids), until=until.isoformat())
            continue
        deliveries.append((ids, delay or None, account_id))
    # One round trip for every delayed delivery of the window.
    enqueue_many_later(deliveries)


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
