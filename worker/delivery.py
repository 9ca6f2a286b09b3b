"""Delivery of one outbox row: claim it, send it, record what happened.

Only one worker may move a row from `queued` to `sending` (a conditional update). A row found
`sending` by a later attempt died mid-send: it becomes `unknown` for an operator, and is sent
again by itself only on a channel that deduplicates by key (design invariant 2).
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from storage import clock
from storage.db import write_transaction
from storage.errors import ConfigurationError, NotFound
from storage.models.outbox import FAILED, QUEUED, SENDING, SENT, UNKNOWN, OutboxMessage
from storage.settings import Settings, get_settings
from worker import outbox_sql
from worker.channels import (
    CHANNEL_NAMES,
    Channel,
    Media,
    Outbound,
    PermanentSendError,
    SendError,
    TransientSendError,
    UncertainSendError,
    get_channel,
)
from worker.logging import get_logger
from worker.outbox import has_outcome_handlers, notify_outcome

log = get_logger("outreach.delivery")


class Outcome(enum.StrEnum):
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    ALREADY_DONE = "already_done"
    IN_FLIGHT = "in_flight"  # another worker is sending it right now


def _finish(outbox_id: int, status: str, *, attempt: int | None, **values: object) -> bool:
    """Move a row out of `sending` (or `queued`) to a final status and tell its source.

    Conditional on the claim this worker made, so a late worker never overwrites another's result.
    """
    with write_transaction():
        query = OutboxMessage.update(status=status, finished_at=clock.now(), **values).where(
            OutboxMessage.id == outbox_id
        )
        if attempt is not None:
            query = query.where(
                (OutboxMessage.status == SENDING) & (OutboxMessage.attempts == attempt)
            )
        else:
            query = query.where(OutboxMessage.status.in_([QUEUED, SENDING]))
        # The row as it now is comes back from the update itself (RETURNING, both backends).
        finished = list(query.returning(*OutboxMessage._meta.sorted_fields).execute())
        if not finished:
            return False
        notify_outcome(finished[0])
    return True


def _finish_claim(row: OutboxMessage, status: str, **values: object) -> bool:
    """:func:`_finish` for this worker's own claim, on the path every message takes.

    One statement when nobody listens to the row's outcome; with outcome handlers, the
    statement and the handlers share one transaction.
    """
    changes = {"status": status, "finished_at": clock.now(), **values}
    if not has_outcome_handlers(row.source):
        done, _ = outbox_sql.finish_claimed(row.id, row.attempts, changes, returning=False)
        return done
    with write_transaction():
        done, finished = outbox_sql.finish_claimed(row.id, row.attempts, changes, returning=True)
        if finished is not None:
            notify_outcome(finished)
    return done


def _claim(outbox_id: int, from_status: str, stale_before: datetime | None = None) -> int | None:
    """Atomically take the row for sending; returns this claim's attempt number (the token
    that later updates are conditional on), or None when another worker got it first."""
    query = OutboxMessage.update(
        status=SENDING, claimed_at=clock.now(), attempts=OutboxMessage.attempts + 1
    ).where((OutboxMessage.id == outbox_id) & (OutboxMessage.status == from_status))
    if stale_before is not None:
        query = query.where(OutboxMessage.claimed_at < stale_before)
    with write_transaction():
        claimed = list(query.returning(OutboxMessage.attempts).tuples().execute())
    if not claimed:
        return None
    attempt: int = claimed[0][0]
    return attempt


# The last answer of _working_channels, for the settings object (and channel lookup) it was for.
_working: tuple[Settings, object, list[str]] | None = None


def _working_channels(settings: Settings) -> list[str]:
    """The channels a send can go out on: those whose settings are complete and valid.

    Settings are read once per process, so this is worked out once, not per message.
    """
    global _working
    if _working is not None and _working[0] is settings and _working[1] is get_channel:
        return _working[2]
    working = []
    for name in CHANNEL_NAMES:
        try:
            get_channel(name, settings)
        except ConfigurationError:
            continue
        working.append(name)
    _working = (settings, get_channel, working)
    return working


def deliver(outbox_id: int) -> Outcome:
    """Send one outbox row at most once; raise TransientSendError to be retried."""
    settings = get_settings()
    # The usual case in one statement: a queued row on a working channel, claimed and read.
    row = outbox_sql.claim_queued(outbox_id, clock.now(), _working_channels(settings))
    if row is None:
        # A duplicate, a send that died, or a channel that cannot work: read the row and see.
        return _deliver_unclaimed(outbox_id, settings)
    return _send(row, get_channel(row.channel, settings))


def _deliver_unclaimed(outbox_id: int, settings: Settings) -> Outcome:
    row = OutboxMessage.get_or_none(OutboxMessage.id == outbox_id)
    if row is None:
        raise NotFound(f"outbox message {outbox_id} does not exist")
    if row.status in (SENT, FAILED, UNKNOWN):
        log.info("delivery.already_done", outbox_id=outbox_id, status=row.status)
        return Outcome.ALREADY_DONE

    try:
        channel = get_channel(row.channel, settings)
    except ConfigurationError as exc:
        # Sending can never work until an operator fixes the setting: fail visibly now.
        _finish(outbox_id, FAILED, attempt=None, last_error=str(exc))
        log.error("delivery.misconfigured", outbox_id=outbox_id, error=str(exc))
        return Outcome.FAILED
    attempt: int | None
    if row.status == SENDING:
        stale_before = clock.now() - _stale_after(settings)
        if row.claimed_at is not None and row.claimed_at >= stale_before:
            log.info("delivery.in_flight", outbox_id=outbox_id)
            return Outcome.IN_FLIGHT
        if not channel.deduplicates:
            return _mark_unknown(row)
        attempt = _claim(outbox_id, SENDING, stale_before)
    else:
        attempt = _claim(outbox_id, QUEUED)
    if attempt is None:
        log.info("delivery.claimed_elsewhere", outbox_id=outbox_id)
        return Outcome.IN_FLIGHT
    row.status, row.attempts = SENDING, attempt
    return _send(row, channel)


def _send(row: OutboxMessage, channel: Channel) -> Outcome:
    """Send a row this worker has claimed (`sending`, with `row.attempts` as its token)."""
    media = Media(row.media_url, row.media_mime or "") if row.media_url else None
    outbound = Outbound(row.idempotency_key, row.recipient, row.body, media)
    try:
        provider_id = channel.send(outbound)
    except PermanentSendError as exc:
        _finish_claim(row, FAILED, last_error=str(exc))
        log.warning("delivery.failed", outbox_id=row.id, channel=row.channel, error=str(exc))
        return Outcome.FAILED
    except UncertainSendError as exc:
        if not channel.deduplicates:
            # It may have arrived: sending again could be a second message. An operator decides.
            return _mark_unknown(row, f"no answer after the message went out: {exc}")
        _back_to_queued(row, exc)
        raise TransientSendError(str(exc)) from exc
    except TransientSendError as exc:
        _back_to_queued(row, exc)
        raise
    _finish_claim(row, SENT, provider_message_id=provider_id)
    log.info("delivery.sent", outbox_id=row.id, channel=row.channel)
    return Outcome.SENT


def _back_to_queued(row: OutboxMessage, exc: SendError) -> None:
    """Back to `queued` so the retry (or the relay) can claim it again."""
    with write_transaction():
        OutboxMessage.update(status=QUEUED, last_error=str(exc), enqueued_at=clock.now()).where(
            (OutboxMessage.id == row.id)
            & (OutboxMessage.status == SENDING)
            & (OutboxMessage.attempts == row.attempts)
        ).execute()
    log.warning("delivery.retry", outbox_id=row.id, channel=row.channel, error=str(exc))


def _stale_after(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.sending_stale_seconds)


# Why a row found in `sending` by a later attempt is `unknown`.
DIED_MID_SEND = "the send started but its outcome was never recorded (the worker died mid-send)"


def _mark_unknown(row: OutboxMessage, reason: str = DIED_MID_SEND) -> Outcome:
    if _finish(row.id, UNKNOWN, attempt=row.attempts, last_error=reason):
        log.error("delivery.unknown", outbox_id=row.id, channel=row.channel)
        return Outcome.UNKNOWN
    return Outcome.ALREADY_DONE


def mark_exhausted(outbox_id: int, error: str) -> bool:
    """Retries ran out: the row is `failed`, and its message sits in the dead-letter queue."""
    done = _finish(outbox_id, FAILED, attempt=None, last_error=f"retries exhausted: {error}")
    if done:
        log.error("delivery.exhausted", outbox_id=outbox_id, error=error)
    return done


def recover_stale_sending(stale_before: datetime, limit: int) -> dict[str, int]:
    """Rows left `sending` since before `stale_before`: resend (dedup channels) or `unknown`."""
    from worker.outbox import enqueue_delivery

    settings = get_settings()
    counts = {"unknown": 0, "resent": 0}
    rows = list(
        OutboxMessage.select()
        .where((OutboxMessage.status == SENDING) & (OutboxMessage.claimed_at < stale_before))
        .order_by(OutboxMessage.id)
        .limit(limit)
    )
    for row in rows:
        if get_channel(row.channel, settings).deduplicates:
            with write_transaction():
                back = (
                    OutboxMessage.update(status=QUEUED, enqueued_at=clock.now())
                    .where((OutboxMessage.id == row.id) & (OutboxMessage.status == SENDING))
                    .where(OutboxMessage.attempts == row.attempts)
                    .execute()
                )
            if back:
                enqueue_delivery(row.id)
                counts["resent"] += 1
        elif _mark_unknown(row) is Outcome.UNKNOWN:
            counts["unknown"] += 1
    return counts
