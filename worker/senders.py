"""Senders and their turns: who a message goes out from, and when it may.

A paced sender hands out slots one after another, each a random spacing (between its minimum
and maximum) after the previous one, plus a little slack (SLOT_SLACK_SHARE), at most its daily
cap per day. The sequence lives on the sender's row in the database and moves only by a
conditional update on the row's `version` (read, work out the next slot, write it if nobody
wrote in between, else read again), so every thread of every worker shares it, and it survives
a restart of Redis or of every worker.

A row holding a slot in the future waits for it on the broker (a delayed message), not in a
thread. When it comes due, a second check keeps the sender quiet for at least the minimum
spacing since its last send ended (worker.pacing records the end), however late the previous
delayed message fired.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from storage import clock
from storage.db import database, write_transaction
from storage.errors import InvalidInput, NotFound
from storage.models.senders import Sender
from storage.settings import Settings, get_settings
from worker import read_cache, sender_sql

# Conditional updates tried before a turn gives up and waits a moment (many workers at once).
MAX_TURN_TRIES = 50
# How long a row waits when the sender's row was too contended to take a turn.
CONTENDED_WAIT = timedelta(milliseconds=200)
# Added to the minimum spacing at the actual send: covers the jitter between a turn being
# granted and its request reaching the far end, so the far end never sees a shorter gap.
SPACING_GUARD = timedelta(milliseconds=20)
# Slots are handed out this share of the minimum spacing further apart than the quiet time the
# turns keep (at most SLOT_SLACK_AT_MOST): room for a send to start a moment after its slot (its
# delayed delivery's own latency) and still leave its sender quiet at the next slot. Without it
# each send's latency adds to its sender's lateness, until the sender is a spacing behind.
SLOT_SLACK_SHARE = 0.05
SLOT_SLACK_AT_MOST = timedelta(milliseconds=100)
# As the name column holds.
MAX_NAME = 255
# A day: a longer spacing is a pause, not a pace.
MAX_SPACING_SECONDS = 86_400.0


@dataclass(frozen=True)
class Pacing:
    """A sender's effective settings: its row's overrides over its channel's defaults."""

    min_spacing: float
    max_spacing: float
    daily_cap: int | None

    @property
    def paced(self) -> bool:
        """Whether its sends need a turn (spacing or a cap); an unpaced one sends in windows."""
        return self.max_spacing > 0 or self.daily_cap is not None

    def spacing(self) -> timedelta:
        return timedelta(seconds=random.uniform(self.min_spacing, self.max_spacing))

    @property
    def slack(self) -> timedelta:
        """What a slot adds to the spacing and the guard (SLOT_SLACK_SHARE)."""
        return min(SLOT_SLACK_AT_MOST, timedelta(seconds=self.min_spacing * SLOT_SLACK_SHARE))


def channel_pacing(channel: str, settings: Settings) -> Pacing:
    """The defaults of every sender of `channel` (webhook and log are unpaced)."""
    cap = settings.sender_daily_cap
    if channel == "whatsapp":
        return Pacing(settings.whatsapp_min_spacing, settings.whatsapp_max_spacing, cap)
    if channel == "email":
        return Pacing(settings.email_min_spacing, settings.email_max_spacing, cap)
    return Pacing(0.0, 0.0, None)


def pacing_of(sender: Sender, settings: Settings) -> Pacing:
    default = channel_pacing(sender.channel, settings)
    low = default.min_spacing if sender.min_spacing_seconds is None else sender.min_spacing_seconds
    high = default.max_spacing if sender.max_spacing_seconds is None else sender.max_spacing_seconds
    cap = default.daily_cap if sender.daily_cap is None else sender.daily_cap
    return Pacing(low, max(low, high), cap)


def default_sender(channel: str, settings: Settings | None = None) -> str:
    """The sender of a message whose account names none: today's settings of the channel."""
    settings = settings or get_settings()
    identity = {
        "whatsapp": settings.waha_session,
        "email": settings.smtp_from,
        "webhook": settings.webhook_url or "default",
    }.get(channel, "default")
    return f"{channel}:{identity}"


@lru_cache(maxsize=4)
def _account_sender_sql(param: str) -> str:
    # Written out: every hunt's run and campaign batch reads it (once in a while per account).
    column = {f.name: f'"{f.column_name}"' for f in (Sender.id, Sender.name, Sender.account_id)}
    return (
        f'SELECT {column["name"]} FROM "{Sender._meta.table_name}" '
        f'WHERE {column["account_id"]} = {param} AND "{Sender.channel.column_name}" = {param} '
        f"ORDER BY {column['id']} LIMIT 1"
    )


def sender_for(channel: str, account_id: int | None) -> str:
    """The sender of a new message: the account's own on that channel, else the default."""
    if account_id:

        def read() -> str | None:
            params = [account_id, channel]
            row = database.execute_sql(_account_sender_sql(str(database.obj.param)), params)
            found = row.fetchone()
            return None if found is None else str(found[0])

        # Read once in a while (worker.read_cache), not once per message of a batch.
        name = read_cache.cached("account_sender", (account_id, channel), read)
        if name is not None:
            return name
    return default_sender(channel)


def identity_of(name: str) -> str:
    """What follows the channel in a sender's name (the WAHA session, the from-address)."""
    return name.partition(":")[2]


def get_sender(name: str, channel: str | None = None) -> Sender:
    """The sender's row, created with no override on first use (`channel` from the name)."""
    row = sender_sql.read(name)
    if row is not None:
        return row
    channel = channel or name.partition(":")[0]
    Sender.insert(name=name, channel=channel, created_at=clock.now()).on_conflict_ignore().execute()
    found: Sender = Sender.get(Sender.name == name)
    return found


@dataclass(frozen=True)
class Turn:
    """A row's turn on its sender: go now, or wait until `until` (holding the slot `hold`
    when it has one, so it does not queue again), and why."""

    go: bool
    until: datetime | None = None
    hold: datetime | None = None
    reason: str = ""


def _day_zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.sending_timezone)


def _next_midnight(when: datetime, zone: ZoneInfo) -> datetime:
    day = when.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, time(0)).replace(tzinfo=zone).astimezone(UTC)


def take_turn(
    name: str, channel: str, held: datetime | None, now: datetime, pacing: Pacing | None = None
) -> Turn:
    """Whether a row of sender `name` may go out now.

    Without a slot (`held` None) the row gets the sender's next one: now if it is free, else a
    time to wait for, held from then on. With one, it goes when the slot has come and the
    sender has been quiet for its minimum spacing. A paused sender makes it wait for the end
    of the pause and give its slot up (slots are handed out again after a pause).

    With the sender's `pacing` as last read, a slot that has come is tried first in one
    statement (the usual case of a delayed delivery firing on time); the sender's row is read
    only when that does not let it go.
    """
    if held is not None and held > now:
        # Not yet: nothing to read (a pause meanwhile is seen when the slot comes).
        return Turn(False, held, held, "spacing")
    if held is not None and pacing is not None:
        quiet_before = now - timedelta(seconds=pacing.min_spacing) - SPACING_GUARD
        if sender_sql.go_if_quiet(name, now, quiet_before):
            return Turn(True)
    settings = get_settings()
    for _ in range(MAX_TURN_TRIES):
        row = get_sender(name, channel)
        if paused := _paused(row, now):
            return paused
        pacing = pacing_of(row, settings)
        values: dict[str, object] = {}
        slot = held
        if slot is None:
            slot, values = _next_slot(row, pacing, now, settings)
        if slot > now:
            if _write(row, values):
                return Turn(False, slot, slot, "spacing")
            continue
        if row.last_send_at is not None:
            quiet_from = (
                clock.as_utc(row.last_send_at)
                + timedelta(seconds=pacing.min_spacing)
                + SPACING_GUARD
            )
            if quiet_from > now:
                spacing = timedelta(seconds=pacing.min_spacing)
                if held is not None and now - held >= spacing and quiet_from - now >= spacing / 2:
                    # Late by a spacing or more, and far from the sender's quiet time: the
                    # sender's next held rows are due too, and rather than all wait for
                    # `quiet_from` and meet again there, this one takes the sender's next free
                    # slot (its own is past; it was counted). A row due a moment before the
                    # quiet time just waits for it.
                    later, values = _next_slot(row, pacing, quiet_from, settings, counted=held)
                    if _write(row, values):
                        return Turn(False, later, later, "spacing")
                    continue
                if _write(row, values):
                    return Turn(False, quiet_from, quiet_from, "spacing")
                continue
        if _write(row, {**values, "last_send_at": now}):
            return Turn(True)
    return Turn(False, now + CONTENDED_WAIT, held, "contended")


def _paused(row: Sender, now: datetime) -> Turn | None:
    """A paused sender's answer: wait for the end of the pause, holding no slot."""
    if row.paused_until is not None and clock.as_utc(row.paused_until) > now:
        return Turn(False, clock.as_utc(row.paused_until), None, f"paused: {row.pause_reason}")
    return None


def reserve_slots(name: str, channel: str, count: int, now: datetime) -> list[datetime] | Turn:
    """The sender's next `count` slots, handed out together (one read, one conditional write):
    for the rows of a window that have none. A slot that has come still waits for the
    sender's quiet time (take_turn, with the slot held). A paused sender hands out none: the
    Turn says until when."""
    settings = get_settings()
    for _ in range(MAX_TURN_TRIES):
        row = get_sender(name, channel)
        if paused := _paused(row, now):
            return paused
        pacing = pacing_of(row, settings)
        state = _SlotState.of(row)
        slots = []
        for _ in range(count):
            slot, state = _slot_after(state, pacing, now, settings)
            slots.append(slot)
        if _write(row, state.values()):
            return slots
    return Turn(False, now + CONTENDED_WAIT, None, "contended")


@dataclass(frozen=True)
class _SlotState:
    """Where a sender's sequence of slots stands."""

    next_slot_at: datetime | None
    day: str | None
    day_count: int

    @classmethod
    def of(cls, row: Sender) -> _SlotState:
        at = clock.as_utc(row.next_slot_at) if row.next_slot_at else None
        return cls(at, row.day, int(row.day_count or 0))

    def values(self) -> dict[str, object]:
        return {"next_slot_at": self.next_slot_at, "day": self.day, "day_count": self.day_count}


def _next_slot(
    row: Sender,
    pacing: Pacing,
    now: datetime,
    settings: Settings,
    *,
    counted: datetime | None = None,
) -> tuple[datetime, dict[str, object]]:
    """The sender's next free slot and the values that hand it out (`counted`: the slot the
    row held before, already counted in its day's sends)."""
    slot, state = _slot_after(_SlotState.of(row), pacing, now, settings, counted=counted)
    return slot, state.values()


def _slot_after(
    state: _SlotState,
    pacing: Pacing,
    now: datetime,
    settings: Settings,
    *,
    counted: datetime | None = None,
) -> tuple[datetime, _SlotState]:
    """The free slot of a sender whose sequence stands at `state`, and where it stands once
    that slot is handed out."""
    start = max(now, state.next_slot_at) if state.next_slot_at else now
    zone = _day_zone(settings)
    day = start.astimezone(zone).date().isoformat()
    count = state.day_count if state.day == day else 0
    if counted is not None and counted.astimezone(zone).date().isoformat() == day:
        count = max(0, count - 1)  # the row's slot before, that day, was counted already
    if pacing.daily_cap is not None and count >= pacing.daily_cap:
        # The day's slots are spent: the first of the next day.
        start = _next_midnight(start, zone)
        day, count = start.astimezone(zone).date().isoformat(), 0
    # The guard too: a send on its slot finds its sender quiet (take_turn), not a moment early;
    # and the slack: a send a moment late leaves the next slot on time.
    after = start + pacing.spacing() + SPACING_GUARD + pacing.slack
    return start, _SlotState(after, day, count + 1)


def slots_after(
    row: Sender, pacing: Pacing, after: datetime, held: Sequence[datetime], settings: Settings
) -> tuple[list[datetime], dict[str, object]]:
    """The sender's next free slots from `after`, one for each row that held (and was counted
    on) a slot of `held`, as its turn gives a row late for its slot; and the values that hand
    them out (to write if the sender's row is still as `row` read it)."""
    state = _SlotState.of(row)
    slots = []
    for slot_before in held:
        slot, state = _slot_after(state, pacing, after, settings, counted=slot_before)
        slots.append(slot)
    return slots, state.values()


def _write(row: Sender, values: dict[str, object]) -> bool:
    """Change the sender's pacing state if nobody changed it since `row` was read."""
    if not values:
        return True
    return sender_sql.write_if_unchanged(int(row.id), int(row.version), values)


def send_ended(name: str, at: datetime) -> None:
    """A send of the sender ended at `at`: the next one waits its minimum spacing from then, so
    the far end never sees a shorter gap however long the request took to reach it (a version
    bump makes a turn worked out meanwhile read again)."""
    sender_sql.mark_send_ended(name, at)


def pause(name: str, until: datetime, reason: str) -> None:
    """Stop the sender until `until` (a later pause already set wins); its slots are dropped."""
    row = get_sender(name)
    with write_transaction():
        (
            Sender.update(
                paused_until=until,
                pause_reason=reason,
                next_slot_at=None,
                version=Sender.version + 1,
            )
            .where(
                (Sender.id == row.id)
                & (Sender.paused_until.is_null() | (Sender.paused_until < until))
            )
            .execute()
        )


def resume(name: str) -> bool:
    """Lift the sender's pause; False when it was not paused."""
    row: Sender | None = Sender.get_or_none(Sender.name == name)
    if row is None:
        raise NotFound(f"sender {name!r} does not exist")
    with write_transaction():
        lifted = (
            Sender.update(
                paused_until=None, pause_reason=None, next_slot_at=None, version=Sender.version + 1
            )
            .where((Sender.id == row.id) & Sender.paused_until.is_null(False))
            .execute()
        )
    return bool(lifted)


def check_spacing(low: float | None, high: float | None) -> None:
    if low is not None and high is not None and high < low:
        raise InvalidInput("the maximum spacing must be at least the minimum spacing")


def _check_from_address(name: str) -> None:
    """An email sender's identity is the From address its messages go out with."""
    from worker.channels.base import PermanentSendError
    from worker.channels.email import sender_address

    try:
        sender_address(name)
    except PermanentSendError as exc:
        raise InvalidInput(str(exc)) from None


def configure_sender(
    name: str,
    *,
    account_id: int | None = None,
    min_spacing: float | None = None,
    max_spacing: float | None = None,
    daily_cap: int | None = None,
    sending_hours: str | None = None,
) -> Sender:
    """Create or change a sender; what is not given is left as it is. `name` is
    ``<channel>:<identity>`` (``whatsapp:<WAHA session>``, ``email:<from-address>``)."""
    from worker.channels import validate_channel
    from worker.hours import check_hours

    channel, _, identity = name.partition(":")
    validate_channel(channel)
    if not identity.strip() or len(name) > MAX_NAME:
        raise InvalidInput(f"a sender is named <channel>:<identity>, at most {MAX_NAME} characters")
    if channel == "email":
        _check_from_address(name)
    for value in (min_spacing, max_spacing):
        if value is not None and not 0 <= value <= MAX_SPACING_SECONDS:
            raise InvalidInput(f"spacing must be 0 to {MAX_SPACING_SECONDS} seconds")
    if daily_cap is not None and daily_cap < 1:
        raise InvalidInput("the daily cap must be at least 1")
    # Everything checked before anything is written.
    existing: Sender | None = Sender.get_or_none(Sender.name == name)
    low = existing.min_spacing_seconds if existing and min_spacing is None else min_spacing
    high = existing.max_spacing_seconds if existing and max_spacing is None else max_spacing
    check_spacing(low, high)
    hours = check_hours(sending_hours) if sending_hours is not None else None
    row = existing or get_sender(name, channel)
    values: dict[str, object] = {}
    if account_id is not None:
        values["account_id"] = account_id
    if min_spacing is not None:
        values["min_spacing_seconds"] = min_spacing
    if max_spacing is not None:
        values["max_spacing_seconds"] = max_spacing
    if daily_cap is not None:
        values["daily_cap"] = daily_cap
    if sending_hours is not None:
        values["sending_hours"] = hours
    if values:
        with write_transaction():
            Sender.update(**values, version=Sender.version + 1).where(Sender.id == row.id).execute()
        # This process's own next message sees the change at once; the others within seconds.
        read_cache.forget()
    found: Sender = Sender.get_by_id(row.id)
    return found
