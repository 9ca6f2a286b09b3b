"""What an operator does with senders: list them, pause one, resume one (what waited goes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from storage import clock
from storage.db import write_transaction
from storage.models.outbox import QUEUED, SENT, OutboxMessage
from storage.models.senders import Sender
from storage.settings import Settings, get_settings
from worker.delivery_queue import enqueue_rows
from worker.logging import get_logger
from worker.pacing import forget
from worker.senders import default_sender, get_sender, pacing_of, pause, resume

log = get_logger("outreach.senders")


def _rows_of(name: str, settings: Settings) -> Any:
    """The outbox rows that go out from sender `name` (rows from before senders: by channel)."""
    channel = name.partition(":")[0]
    mine = OutboxMessage.sender == name
    if default_sender(channel, settings) == name:
        mine = mine | (OutboxMessage.sender.is_null() & (OutboxMessage.channel == channel))
    return mine


def resume_sender(name: str) -> dict[str, Any]:
    """Lift the sender's pause and send what waited for it now, in its turns (each row once:
    its claim for sending is conditional, and a delayed delivery that fires later finds it
    done). Returns the sender's summary and how many rows were enqueued again."""
    settings = get_settings()
    lifted = resume(name)
    forget(name)
    now = clock.now()
    with write_transaction():
        waiting = sorted(
            (row.id, row.account_id)
            for row in OutboxMessage.update(enqueued_at=now, not_before=None)
            .where(
                (OutboxMessage.status == QUEUED)
                & (OutboxMessage.enqueued_at > now)
                & _rows_of(name, settings)
            )
            .returning(OutboxMessage.id, OutboxMessage.account_id)
            .execute()
        )
    if waiting:
        enqueue_rows(waiting)
    log.info("sender.resumed", sender=name, was_paused=lifted, requeued=len(waiting))
    return {**sender_summary(get_sender(name), now), "resumed": lifted, "requeued": len(waiting)}


def pause_sender(name: str, seconds: float, reason: str) -> dict[str, Any]:
    """An operator's pause of `seconds` from now; its rows wait (none fails)."""
    now = clock.now()
    sender = get_sender(name)
    pause(name, now + timedelta(seconds=seconds), reason)
    forget(name)
    log.info("sender.paused", sender=name, until=(now + timedelta(seconds=seconds)).isoformat())
    return sender_summary(Sender.get_by_id(sender.id), now)


def _day_start(now: datetime, settings: Settings) -> datetime:
    zone = ZoneInfo(settings.sending_timezone)
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def sender_summary(sender: Sender, now: datetime) -> dict[str, Any]:
    """What `outreach sender list` shows of one sender."""
    settings = get_settings()
    pacing = pacing_of(sender, settings)
    mine = _rows_of(str(sender.name), settings)
    sent_today = (
        OutboxMessage.select()
        .where(
            mine
            & (OutboxMessage.status == SENT)
            & (OutboxMessage.finished_at >= _day_start(now, settings))
        )
        .count()
    )
    waiting = OutboxMessage.select().where(mine & (OutboxMessage.status == QUEUED)).count()
    paused = sender.paused_until is not None and clock.as_utc(sender.paused_until) > now
    next_slot = clock.as_utc(sender.next_slot_at) if sender.next_slot_at else None
    if paused:
        next_slot = clock.as_utc(sender.paused_until)
    elif next_slot is not None and next_slot < now:
        next_slot = None
    return {
        "name": sender.name,
        "channel": sender.channel,
        "account_id": sender.account_id,
        "min_spacing_seconds": pacing.min_spacing,
        "max_spacing_seconds": pacing.max_spacing,
        "daily_cap": pacing.daily_cap,
        "next_slot_at": next_slot.isoformat() if next_slot else None,
        "sent_today": sent_today,
        "waiting": waiting,
        "paused_until": clock.as_utc(sender.paused_until).isoformat() if paused else None,
        "pause_reason": sender.pause_reason if paused else None,
    }


def list_senders() -> list[dict[str, Any]]:
    """Every sender known (a sender's row is made when it is first set or sends)."""
    now = clock.now()
    return [sender_summary(s, now) for s in Sender.select().order_by(Sender.name)]
