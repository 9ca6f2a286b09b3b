"""The outbox: claim an idempotency key, then (only for a new claim) enqueue its delivery.

Design invariant 1: the key is claimed in the database (unique constraint) before anything is
put on the broker, so a second call with the same key, a redelivered actor or a racing worker
changes nothing. Design invariant 2: the delivery is enqueued after the commit; a process that
dies in between leaves the row `queued`, and the relay enqueues it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from peewee import DoesNotExist

from storage import clock
from storage.db import database, write_transaction
from storage.errors import InvalidInput
from storage.models.consent import normalise_address
from storage.models.outbox import QUEUED, SUPPRESSED, OutboxMessage
from worker import outbox_sql
from worker.channels import Media, validate_channel
from worker.delivery_queue import enqueue_deliveries, enqueue_delivery
from worker.hours import check_hours
from worker.logging import get_logger
from worker.outcomes import has_outcome_handlers, notify_outcomes
from worker.senders import sender_for

log = get_logger("outreach.outbox")

# Longest key the table takes; keys are built from ids, so this is generous.
MAX_KEY_LENGTH = 255
# Longest recipient the table takes (an email address can be 320 characters).
MAX_RECIPIENT_LENGTH = 320
# Longest body: WhatsApp's limit for a text message, and far above any template here.
MAX_BODY_LENGTH = 65_536


def _checked(
    idempotency_key: str,
    channel: str,
    recipient: str,
    body: str,
    media: Media | None,
    source: str,
    account_id: int | None,
    sending_hours: str | None = None,
    senders: dict[str, str] | None = None,
) -> outbox_sql.NewMessage:
    """The message as a new row holds it, once checked (InvalidInput otherwise); `senders`
    keeps the senders looked up by channel, for a call that checks many."""
    _validate(idempotency_key, channel, recipient, body)
    known = {} if senders is None else senders
    if channel not in known:
        known[channel] = sender_for(channel, account_id)
    return outbox_sql.NewMessage(
        idempotency_key,
        channel,
        recipient.strip(),
        body,
        media.url if media else None,
        media.mime_type if media else None,
        source,
        account_id,
        normalise_address(recipient),
        known[channel],
        check_hours(sending_hours),
    )


def _tell_suppressed(rows: Sequence[OutboxMessage]) -> None:
    """Rows a claim wrote `suppressed` are final at once: their sources hear it now, in the
    claim's own transaction (a campaign's recipient is skipped)."""
    suppressed = [row for row in rows if row.status == SUPPRESSED]
    if not suppressed:
        return
    log.info("outbox.suppressed", outbox_ids=[row.id for row in suppressed])
    if any(has_outcome_handlers(row.source) for row in suppressed):
        with write_transaction():
            notify_outcomes(suppressed)


def _validate(key: str, channel: str, recipient: str, body: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"idempotency key must be 1 to {MAX_KEY_LENGTH} characters")
    validate_channel(channel)
    if not recipient or not recipient.strip():
        raise InvalidInput("recipient is empty")
    if len(recipient.strip()) > MAX_RECIPIENT_LENGTH:
        raise InvalidInput(f"recipient is longer than {MAX_RECIPIENT_LENGTH} characters")
    if not body or not body.strip():
        raise InvalidInput("message body is empty")
    if len(body) > MAX_BODY_LENGTH:
        raise InvalidInput(f"message body is longer than {MAX_BODY_LENGTH} characters")


def queue_message(
    idempotency_key: str,
    channel: str,
    recipient: str,
    body: str,
    media: Media | None = None,
    source: str = "manual",
    *,
    enqueue: bool = True,
    account_id: int | None = None,
) -> OutboxMessage:
    """Claim the key and enqueue its delivery after commit; the same key again is a no-op.

    Returns the row: the new one, or the one that already held the key (unchanged). The claim
    checks the suppression list in the same statement: for an address suppressed in
    `account_id` (in any account when it is None) the row is written `suppressed`, final,
    never enqueued, and its source's outcome handlers hear it at once.
    Works inside the caller's transaction, so a claim commits or rolls back with it. With
    `enqueue=False` the caller enqueues the deliveries itself once its transaction has
    committed (``worker.delivery_queue.enqueue_deliveries``, many rows of one account as groups on
    its lane); the relay covers a crash in between.
    """
    message = _checked(idempotency_key, channel, recipient, body, media, source, account_id)
    # One statement claims the key and reads the new row back: atomic without a transaction
    # (or savepoint) of its own, and part of the caller's transaction when there is one.
    row = outbox_sql.insert_queued(message, clock.now())
    if row is not None:
        if row.status == SUPPRESSED:
            _tell_suppressed([row])
        elif enqueue:
            # Outside a transaction the row is committed already, and this enqueues at once.
            database.after_commit(lambda: enqueue_delivery(row.id, account_id=account_id))
        return row
    existing = outbox_sql.get_by_key(idempotency_key)
    if existing is None:
        # The holder was deleted between the two statements: the caller's retry claims the key.
        raise DoesNotExist(f"outbox key {idempotency_key!r} was released meanwhile")
    log.info("outbox.key_already_claimed", idempotency_key=idempotency_key, outbox_id=existing.id)
    return existing


def claim_here(
    idempotency_key: str,
    channel: str,
    recipient: str,
    body: str,
    source: str,
    media: Media | None = None,
    account_id: int | None = None,
) -> tuple[object, ...]:
    """A new claim's values, checked as :func:`queue_message` checks them, for a caller that
    writes the claim in a statement of its own (the fields of ``worker.outbox_sql.CLAIMED_HERE``,
    in that order; ON CONFLICT DO NOTHING keeps a key claimed before).

    The row is written already claimed for sending, by the worker that sends it as soon as its
    transaction commits (``worker.delivery.send_here``). A crash in between leaves it
    `sending`, exactly as a crash between a claim and its send does: the relay settles it
    (`unknown` for review, or sent again on a channel that deduplicates).
    """
    message = new_claim(idempotency_key, channel, recipient, body, source, media, account_id)
    return message.claimed_here(clock.now())


def new_claim(
    idempotency_key: str,
    channel: str,
    recipient: str,
    body: str,
    source: str,
    media: Media | None = None,
    account_id: int | None = None,
) -> outbox_sql.NewMessage:
    """The message of :func:`claim_here`, checked, for a caller whose own statement checks the
    suppression list too: ``worker.outbox_sql.claim_values_sql`` and ``claim_params`` give its
    text and parameters, as every claim's."""
    return _checked(idempotency_key, channel, recipient, body, media, source, account_id)


@dataclass(frozen=True)
class Outgoing:
    """One message for :func:`queue_messages`."""

    idempotency_key: str
    channel: str
    recipient: str
    body: str
    media: Media | None = None


# Messages claimed per statement by queue_messages (a parameter list well under every limit).
CLAIM_CHUNK = 200


def queue_messages(
    messages: Sequence[Outgoing],
    source: str = "manual",
    *,
    account_id: int | None = None,
    sending_hours: str | None = None,
) -> list[OutboxMessage]:
    """:func:`queue_message` for many messages of one account: one insert, deliveries enqueued
    together.

    The same rules: every message is checked first (nothing is written if one is bad), each key
    is claimed once, a suppressed address is written `suppressed` (its source told at once),
    and the deliveries of the new `queued` claims are enqueued after the commit. Returns the
    rows this call wrote; keys claimed before are left as they are. `sending_hours` overrides
    the account's for these messages (a campaign's own hours).
    """
    senders: dict[str, str] = {}
    checked = [
        _checked(
            m.idempotency_key,
            m.channel,
            m.recipient,
            m.body,
            m.media,
            source,
            account_id,
            sending_hours,
            senders,
        )
        for m in messages
    ]
    if not checked:
        return []
    now = clock.now()
    written: list[OutboxMessage] = []
    with database.atomic():
        for first in range(0, len(checked), CLAIM_CHUNK):
            # RETURNING gives only the rows inserted: ignored keys are not claims.
            written += outbox_sql.insert_many_queued(checked[first : first + CLAIM_CHUNK], now)
        _tell_suppressed(written)
        claimed = [row.id for row in written if row.status == QUEUED]
        if claimed:
            database.after_commit(lambda: enqueue_deliveries(claimed, account_id=account_id))
    if len(written) < len(messages):
        log.info("outbox.keys_already_claimed", count=len(messages) - len(written))
    return written
