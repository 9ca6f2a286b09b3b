"""Delivery of outbox rows: claim them, send them, record what happened.

Only one worker may move a row from `queued` to `sending` (a conditional update). A row found
`sending` by a later attempt died mid-send: it becomes `unknown` for an operator, and is sent
again by itself only on a channel that deduplicates by key (design invariant 2).

Rows come in groups (one delivery message for the rows queued together) and go out in windows:
a window's rows are claimed in one statement, sent one after another, and their outcomes
recorded together (row by row if that fails). A window stops taking new sends after
WINDOW_SECONDS and gives its unsent rows back, so a worker killed mid-window leaves a second or
so of sends for review.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta

from peewee import Expression
from structlog.contextvars import bound_contextvars

from storage import clock
from storage.db import write_transaction
from storage.errors import ConfigurationError, NotFound, OutreachError
from storage.models.outbox import (
    FAILED,
    QUEUED,
    SENDING,
    SENT,
    SUPPRESSED,
    UNKNOWN,
    OutboxMessage,
)
from storage.settings import Settings, get_settings
from worker import outbox_sql, pacing
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
from worker.consent.unsubscribe import unsubscribe_link
from worker.delivery_queue import (
    enqueue_deliveries_later,
    enqueue_delivery,
    enqueue_rows,
    first_backoff_ms,
)
from worker.logging import get_logger
from worker.outbox_sql import ClaimOutcome
from worker.outcomes import has_outcome_handlers, notify_outcomes
from worker.pacing import Deferral

log = get_logger("outreach.delivery")

# Rows claimed together, then recorded together: a statement each instead of two per row.
DELIVERY_WINDOW = 20
# A window takes no new send after this long; its unsent rows go back to `queued` (and into
# the next window), so a crash leaves at most about this much sending for review.
WINDOW_SECONDS = 1.0
# A group hands the rows it has not reached to a new message after this long, well inside the
# actor's time limit.
GROUP_SECONDS = 60.0


class Outcome(enum.StrEnum):
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    RETRY = "retry"  # a transient failure: back to `queued`, the message is retried
    SUPPRESSED = "suppressed"  # the address opted out after the claim: never sent
    ALREADY_DONE = "already_done"
    IN_FLIGHT = "in_flight"  # another worker is sending it right now
    DEFERRED = "deferred"  # not yet allowed (hours, spacing, a pause): back to `queued`, delayed


def _finish(
    outbox_id: int,
    status: str,
    *,
    attempt: int | None,
    only: Expression | None = None,
    **values: object,
) -> bool:
    """Move a row out of `sending` (or `queued`) to a final status and tell its source.

    Conditional on the claim this worker made, so a late worker never overwrites another's
    result; without a claim (`attempt` None), on `only` (by default: `queued` or `sending`).
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
            query = query.where(
                OutboxMessage.status.in_([QUEUED, SENDING]) if only is None else only
            )
        # The row as it now is comes back from the update itself (RETURNING, both backends).
        finished = list(query.returning(*OutboxMessage._meta.sorted_fields).execute())
        if not finished:
            return False
        notify_outcomes(finished)
    return True


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
    return deliver_many([outbox_id])[outbox_id]


def send_claimed(row: OutboxMessage) -> Outcome:
    """Send a row its claimer wrote already claimed for sending (`sending`, `attempts` as the
    token); raise TransientSendError when it is to be retried."""
    settings = get_settings()
    if _channel_or_fail(row.id, row.channel, settings, attempt=row.attempts) is None:
        return Outcome.FAILED
    outcomes: dict[int, Outcome] = {}
    errors: list[Exception] = []
    _send_claimed([row], settings, outcomes, errors)
    _raise_first(errors)
    return outcomes[row.id]


def send_here(outbox_id: int, values: Sequence[object]) -> None:
    """Send a row this process has just written claimed for sending
    (``worker.outbox.claim_here``) and committed: no delivery message, and no statement to
    claim it.

    For work that writes one message at a time (an engagement user's goodbye). A send to be
    retried, or anything else that stops it, hands the row to the delivery actor after its
    first backoff, with its retries; if even that fails, the relay settles the row later.
    Never raises: the row is committed, and the caller's own work is done.
    """
    row = outbox_sql.claimed_row(outbox_id, values)
    try:
        send_claimed(row)
        return
    except Exception as exc:
        log.warning("outbox.delivery_handed_over", outbox_id=outbox_id, error=str(exc))
    try:
        enqueue_deliveries_later([outbox_id], first_backoff_ms(), account_id=row.account_id)
    except Exception as exc:
        log.error("outbox.enqueue_failed", outbox_id=outbox_id, error=str(exc))


def deliver_many(outbox_ids: Sequence[int]) -> dict[int, Outcome]:
    """Send each row at most once, window by window; returns each row's outcome.

    One row's failure never stops the others: a transient one is raised (TransientSendError)
    when every other row has been tried, for the message to be retried (a retry skips the rows
    done by then); bad input (an unknown id) is raised likewise, after the others.
    """
    settings = get_settings()
    channels = _working_channels(settings)
    outcomes: dict[int, Outcome] = {}
    errors: list[Exception] = []
    todo = list(dict.fromkeys(outbox_ids))
    size = DELIVERY_WINDOW
    started = time.monotonic()
    while todo:
        if outcomes and time.monotonic() - started > GROUP_SECONDS:
            _hand_over(todo)
            break
        window, todo = todo[:size], todo[size:]
        window = _put_back_not_yet(window, outcomes)
        # The usual case in one statement: queued rows on a working channel, claimed and read.
        claimed = outbox_sql.claim_queued(window, clock.now(), channels)
        window_rows = [claimed[i] for i in window if i in claimed]
        # This worker's claims go out first: nothing below can leave them claimed and unsent.
        unsent = _send_claimed(window_rows, settings, outcomes, errors)
        for outbox_id in window:
            if outbox_id not in claimed:
                # A duplicate, a send that died, or a channel that cannot work: read it and see.
                try:
                    outcomes[outbox_id] = _deliver_unclaimed(outbox_id, settings)
                except (TransientSendError, OutreachError) as exc:
                    errors.append(exc)
        size = _next_window_size(size, len(window_rows), len(unsent))
        todo = unsent + todo
    _raise_first(errors)
    return outcomes


def _put_back_not_yet(window: list[int], outcomes: dict[int, Outcome]) -> list[int]:
    """The window without its rows whose paced sender is not quiet yet (pacing.not_yet): they
    are put back unclaimed, as they are, until it is. Should the check fail, every row is
    claimed and takes its turn as usual."""
    try:
        waiting = pacing.not_yet(window, clock.now())
    except Exception:
        log.exception("delivery.not_yet_failed", rows=len(window))
        return window
    if not waiting:
        return window
    _enqueue_deferred(waiting)
    for deferral in waiting:
        outcomes[deferral.outbox_id] = Outcome.DEFERRED
    put_back = {deferral.outbox_id for deferral in waiting}
    return [outbox_id for outbox_id in window if outbox_id not in put_back]


def _next_window_size(size: int, claimed: int, unsent: int) -> int:
    """After a slow window, claim only what it had time to send, so rows are not claimed and
    given back over and over; grow again, up to DELIVERY_WINDOW, while sends are quick."""
    if unsent:
        return max(1, claimed - unsent)
    return min(DELIVERY_WINDOW, size * 2)


def _raise_first(errors: list[Exception]) -> None:
    """A transient failure first (the message is worth retrying), then bad input."""
    transient = [e for e in errors if isinstance(e, TransientSendError)]
    if len(transient) == 1:
        raise transient[0]
    if transient:
        raise TransientSendError(f"{len(transient)} sends to retry; the first: {transient[0]}")
    if errors:
        raise errors[0]


def _hand_over(outbox_ids: list[int]) -> None:
    """A new message for the rows this one did not reach in time."""
    log.info("delivery.handed_over", count=len(outbox_ids))
    enqueue_rows(outbox_sql.accounts_of(outbox_ids))


def _deliver_unclaimed(outbox_id: int, settings: Settings) -> Outcome:
    row = OutboxMessage.get_or_none(OutboxMessage.id == outbox_id)
    if row is None:
        raise NotFound(f"outbox message {outbox_id} does not exist")
    if row.status in (SENT, FAILED, UNKNOWN, SUPPRESSED):
        log.info("delivery.already_done", outbox_id=outbox_id, status=row.status)
        return Outcome.ALREADY_DONE
    stale_before = clock.now() - _stale_after(settings)
    if row.status == SENDING and row.claimed_at is not None and row.claimed_at >= stale_before:
        log.info("delivery.in_flight", outbox_id=outbox_id)
        return Outcome.IN_FLIGHT
    if outbox_sql.is_row_suppressed(outbox_id):
        # Consent wins over everything else, a send that died mid-way included.
        return _suppress(row)

    channel = _channel_or_fail(outbox_id, row.channel, settings)
    if channel is None:
        return Outcome.FAILED
    attempt: int | None
    if row.status == SENDING:
        if not channel.deduplicates:
            return _mark_unknown(row)
        attempt = _claim(outbox_id, SENDING, stale_before)
    else:
        attempt = _claim(outbox_id, QUEUED)
    if attempt is None:
        log.info("delivery.claimed_elsewhere", outbox_id=outbox_id)
        return Outcome.IN_FLIGHT
    row.status, row.attempts = SENDING, attempt
    outcomes: dict[int, Outcome] = {}
    errors: list[Exception] = []
    _send_claimed([row], settings, outcomes, errors)
    _raise_first(errors)
    return outcomes[row.id]


# Why a row claimed before its address was suppressed is not sent.
SUPPRESSED_AFTER_CLAIM = "the address was suppressed after the message was queued"


def _suppress(row: OutboxMessage) -> Outcome:
    """The row's address opted out since its claim: it ends `suppressed`, and is never sent."""
    only = (OutboxMessage.status == row.status) & (OutboxMessage.attempts == row.attempts)
    if _finish(row.id, SUPPRESSED, attempt=None, only=only, last_error=SUPPRESSED_AFTER_CLAIM):
        log.info("delivery.suppressed", outbox_id=row.id, channel=row.channel)
        return Outcome.SUPPRESSED
    return Outcome.ALREADY_DONE


def _channel_or_fail(
    outbox_id: int, name: str, settings: Settings, attempt: int | None = None
) -> Channel | None:
    """The row's channel; None when its settings are missing or invalid: sending can never
    work until an operator fixes them, so the row fails visibly now."""
    try:
        return get_channel(name, settings)
    except ConfigurationError as exc:
        _finish(outbox_id, FAILED, attempt=attempt, last_error=str(exc))
        log.error("delivery.misconfigured", outbox_id=outbox_id, error=str(exc))
        return None


def _send_claimed(
    rows: list[OutboxMessage],
    settings: Settings,
    outcomes: dict[int, Outcome],
    errors: list[Exception],
) -> list[int]:
    """Send rows this worker has claimed (`sending`, `attempts` as the token), then record the
    outcomes together; adds them to `outcomes`, and the retries' errors to `errors`.

    Returns the ids given back unsent because the window's time ran out.
    """
    results: list[ClaimOutcome] = []
    unsent: list[OutboxMessage] = []
    deferred: list[Deferral] = []
    # The paced rows sent, each with the time its sender's quiet time counts from.
    sent: list[tuple[OutboxMessage, datetime]] = []
    started = time.monotonic()
    reserved = _reserve(rows, settings)
    turns = _take_turns(rows, settings)
    # The rows let go first, one after another: a turn is a row's own for a moment only.
    rows = sorted(rows, key=lambda row: row.id not in turns.taken)
    last_start: datetime | None = None
    for n, row in enumerate(rows):
        if (results or deferred) and time.monotonic() - started > WINDOW_SECONDS:
            unsent, holding = _given_back(rows[n:], reserved)
            deferred += holding
            break
        # Hours, a pause, the sender's turn: checked just before the send, never slept on.
        granted = clock.now()
        try:
            taken = turns.taken.get(row.id)
            kept = pacing.keep_turn(row, taken, granted, settings) if taken else None
            if kept is not None:
                deferral, granted = None, kept
            else:
                refused = taken is not None or row.id in turns.refused
                deferral = pacing.gate(row, granted, settings, refused=refused)
        except Exception as exc:
            # The window's other claims must still be recorded: this row is retried.
            log.exception("delivery.pacing_failed", outbox_id=row.id)
            reason = f"the pacing check failed: {type(exc).__name__}: {exc}"
            results.append(ClaimOutcome(row.id, row.attempts, QUEUED, error=reason))
            outcomes[row.id] = Outcome.RETRY
            errors.append(TransientSendError(reason))
            continue
        if deferral is None:
            last_start = _note_start(row.id in turns.taken, last_start)
            result, error = _attempt(row, get_channel(row.channel, settings))
            quiet_counts_from = _send_ended(row, granted, settings)
            if quiet_counts_from is not None and row.not_before is not None:
                sent.append((row, quiet_counts_from))
            if isinstance(error, TransientSendError):
                deferral = _paused_by(row, error, settings)
        if deferral is not None:
            deferred.append(deferral)
            outcomes[row.id] = Outcome.DEFERRED
            continue
        results.append(result)
        outcomes[row.id] = Outcome.RETRY if result.status == QUEUED else Outcome(result.status)
        if error is not None:
            errors.append(error)
    _next_rows_later(sent, settings)
    has_handlers = any(has_outcome_handlers(r.source) for r in rows)
    _record(results, unsent, deferred, has_handlers=has_handlers)
    return [row.id for row in unsent]


def _note_start(let_go: bool, last_start: datetime | None) -> datetime | None:
    """A send of the window starts now: the time since the one before it, when both were let
    go together, is what the next windows expect (pacing.note_send_interval)."""
    if not let_go:
        return None
    now = clock.now()
    if last_start is not None:
        pacing.note_send_interval((now - last_start).total_seconds())
    return now


def _reserve(rows: list[OutboxMessage], settings: Settings) -> set[int]:
    """The window's slots, taken together per paced sender (pacing.reserve); should that
    fail, each row takes its own turn as it goes."""
    try:
        return pacing.reserve(rows, clock.now(), settings)
    except Exception:
        log.exception("delivery.reserve_failed", rows=len(rows))
        return set()


def _take_turns(rows: list[OutboxMessage], settings: Settings) -> pacing.WindowTurns:
    """The window's turns, taken together (pacing.take_turns); should that fail, each row
    takes its own as it goes."""
    try:
        return pacing.take_turns(rows, clock.now(), settings)
    except Exception:
        log.exception("delivery.take_turns_failed", rows=len(rows))
        return pacing.WindowTurns()


def _given_back(
    rows: list[OutboxMessage], reserved: set[int]
) -> tuple[list[OutboxMessage], list[Deferral]]:
    """The rows a window ran out of time for: back to `queued`, except those holding a slot
    reserved in this window, deferred to it (with it) so the slot is not lost."""
    now = clock.now()
    unsent = [row for row in rows if row.id not in reserved]
    holding = []
    for row in rows:
        if row.id in reserved:
            hold = clock.as_utc(row.not_before)
            until = max(hold, now)
            holding.append(Deferral(row.id, row.attempts, until, hold, "spacing", row.account_id))
    return unsent, holding


def _send_ended(row: OutboxMessage, granted: datetime, settings: Settings) -> datetime | None:
    """The sender's quiet time may start now (a paced one's): when it counts from, None should
    recording it fail (a failure only loses that)."""
    try:
        return pacing.send_ended(row, granted, settings)
    except Exception:
        log.exception("delivery.send_end_failed", outbox_id=row.id)
        return None


def _next_rows_later(sent: list[tuple[OutboxMessage, datetime]], settings: Settings) -> None:
    """The next waiting rows of the senders that sent late, moved (pacing.next_rows_later);
    a failure only leaves them where they were (they find their sender busy, and wait)."""
    if not sent:
        return
    try:
        pacing.next_rows_later(sent, settings)
    except Exception:
        log.exception("delivery.next_rows_later_failed", rows=len(sent))


def _paused_by(
    row: OutboxMessage, error: TransientSendError, settings: Settings
) -> Deferral | None:
    """The row's deferral when the error is a provider's signal to stop (its sender paused)."""
    try:
        return pacing.pause_on_signal(row, error, settings)
    except Exception:
        # Not paused: the row is retried as any transient failure is.
        log.exception("delivery.pause_failed", outbox_id=row.id)
        return None


def _attempt(row: OutboxMessage, channel: Channel) -> tuple[ClaimOutcome, SendError | None]:
    """One send, and what it means for the row: a final status, or QUEUED and the error that
    the message is to be retried for."""
    media = Media(row.media_url, row.media_mime or "") if row.media_url else None
    unsubscribe = unsubscribe_link(row)
    outbound = Outbound(
        row.idempotency_key,
        row.recipient,
        row.body,
        media,
        unsubscribe_url=unsubscribe,
        sender=row.sender,
    )
    try:
        # The channel's own lines name the row, as those of a one-row message do.
        with bound_contextvars(outbox_id=row.id):
            provider_id = channel.send(outbound)
    except PermanentSendError as exc:
        log.warning("delivery.failed", outbox_id=row.id, channel=row.channel, error=str(exc))
        return ClaimOutcome(row.id, row.attempts, FAILED, error=str(exc)), None
    except UncertainSendError as exc:
        return _attempt_uncertain(row, channel, f"no answer after the message went out: {exc}")
    except TransientSendError as exc:
        log.warning("delivery.retry", outbox_id=row.id, channel=row.channel, error=str(exc))
        return ClaimOutcome(row.id, row.attempts, QUEUED, error=str(exc)), exc
    except Exception as exc:
        # A fault in the channel itself, mid-send: the message may have gone out. Recorded like
        # a send with no answer, so the window's other outcomes are recorded with it.
        log.exception("delivery.channel_error", outbox_id=row.id, channel=row.channel)
        return _attempt_uncertain(row, channel, f"the send raised {type(exc).__name__}: {exc}")
    log.info("delivery.sent", outbox_id=row.id, channel=row.channel)
    return ClaimOutcome(row.id, row.attempts, SENT, provider_message_id=provider_id), None


def _attempt_uncertain(
    row: OutboxMessage, channel: Channel, reason: str
) -> tuple[ClaimOutcome, SendError | None]:
    """A send that may or may not have gone out."""
    if not channel.deduplicates:
        # It may have arrived: sending again could be a second message. An operator decides.
        log.error("delivery.unknown", outbox_id=row.id, channel=row.channel, error=reason)
        return ClaimOutcome(row.id, row.attempts, UNKNOWN, error=reason), None
    # The channel drops a second send with the same key: trying again is safe.
    log.warning("delivery.retry", outbox_id=row.id, channel=row.channel, error=reason)
    return ClaimOutcome(row.id, row.attempts, QUEUED, error=reason), TransientSendError(reason)


def _record(
    results: list[ClaimOutcome],
    unsent: list[OutboxMessage],
    deferred: list[Deferral],
    *,
    has_handlers: bool,
) -> None:
    """Record the window; should that fail (a source's handler, a deadlock), row by row, so one
    row's fault costs that row only (left `sending`, for the relay), not the window's sends.

    The statements are conditional on each claim, so recording again is safe. The first
    error is raised once every row has been tried.
    """
    try:
        _record_together(results, unsent, deferred, has_handlers=has_handlers)
        return
    except Exception as exc:
        if len(results) + len(unsent) + len(deferred) <= 1:
            raise
        log.warning("delivery.record_window_failed", rows=len(results), error=str(exc))
    failures: list[Exception] = []
    parts: list[tuple[list[ClaimOutcome], list[OutboxMessage], list[Deferral]]] = [
        ([r], [], []) for r in results
    ]
    if unsent:
        parts.append(([], unsent, []))
    if deferred:
        parts.append(([], [], deferred))
    for part_results, part_unsent, part_deferred in parts:
        try:
            _record_together(part_results, part_unsent, part_deferred, has_handlers=has_handlers)
        except Exception as exc:
            ids = (
                [r.outbox_id for r in part_results]
                or [row.id for row in part_unsent]
                or [d.outbox_id for d in part_deferred]
            )
            log.error("delivery.record_failed", outbox_ids=ids, error=str(exc))
            failures.append(exc)
    if failures:
        raise failures[0]


def _record_together(
    results: list[ClaimOutcome],
    unsent: list[OutboxMessage],
    deferred: list[Deferral],
    *,
    has_handlers: bool,
) -> None:
    """The outcomes in one statement; the retries and unsent rows, back to `queued`, in
    another; the deferred rows, back to `queued` and due later, in a third. With outcome
    handlers, or more than one statement, in one transaction. The deferred rows' delayed
    deliveries are enqueued once that is committed."""
    final = [r for r in results if r.status != QUEUED]
    back = [(r.outbox_id, r.attempt, r.error) for r in results if r.status == QUEUED]
    back += [(row.id, row.attempts, None) for row in unsent]
    later = [(d.outbox_id, d.attempt, d.until, d.hold) for d in deferred]
    now = clock.now()
    statements = bool(final) + bool(back) + bool(later)
    together = statements > 1 or (bool(final) and has_handlers)
    with write_transaction() if together else nullcontext():
        finished = outbox_sql.finish_claimed(final, now, returning=has_handlers)
        if finished:
            notify_outcomes(finished)
        outbox_sql.requeue_claimed(back, now)
        outbox_sql.defer_claimed(later)
    if deferred:
        _enqueue_deferred(deferred)


def _enqueue_deferred(deferred: list[Deferral]) -> None:
    """Committed already: a failed enqueue leaves the rows `queued`, for the relay."""
    log.info(
        "delivery.deferred",
        count=len(deferred),
        until=min(d.until for d in deferred).isoformat(),
        reason=deferred[0].reason,
    )
    try:
        pacing.enqueue_deferred(deferred)
    except Exception as exc:
        log.error("delivery.enqueue_deferred_failed", count=len(deferred), error=str(exc))


def _stale_after(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.sending_stale_seconds)


# Why a row found in `sending` by a later attempt is `unknown`.
DIED_MID_SEND = "the send started but its outcome was never recorded (the worker died mid-send)"


def _mark_unknown(row: OutboxMessage, reason: str = DIED_MID_SEND) -> Outcome:
    if _finish(row.id, UNKNOWN, attempt=row.attempts, last_error=reason):
        log.error("delivery.unknown", outbox_id=row.id, channel=row.channel)
        return Outcome.UNKNOWN
    return Outcome.ALREADY_DONE


def mark_exhausted(outbox_id: int, error: str, *, failed_before: bool = False) -> bool:
    """Retries ran out: the row is `failed`, and its message sits in the dead-letter queue.

    Only a row waiting in `queued`: one `sending` is another worker's claim right now (a group
    can share rows with the message it handed them over to), and the relay settles it if that
    worker died. With `failed_before`, only a row that recorded a send error: a row of a group
    that was never tried (handed over) is left to the message that has it now.
    """
    waiting = OutboxMessage.status == QUEUED
    if failed_before:
        waiting &= OutboxMessage.last_error.is_null(False)
    done = _finish(
        outbox_id, FAILED, attempt=None, only=waiting, last_error=f"retries exhausted: {error}"
    )
    if done:
        log.error("delivery.exhausted", outbox_id=outbox_id, error=error)
    return done


def recover_stale_sending(stale_before: datetime, limit: int) -> dict[str, int]:
    """Rows left `sending` since before `stale_before`: resend (dedup channels) or `unknown`."""
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
                enqueue_delivery(row.id, account_id=row.account_id)
                counts["resent"] += 1
        elif _mark_unknown(row) is Outcome.UNKNOWN:
            counts["unknown"] += 1
    return counts
