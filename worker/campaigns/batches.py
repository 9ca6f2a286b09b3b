"""Batches: the arithmetic (plain functions) and the work of one batch of one campaign.

A batch is claimed by its row (unique campaign + number) before its message is enqueued. The
work takes pending recipients in contact order, a chunk per transaction, each chunk under the
campaign's and the batch's row locks, so two deliveries of the same message, a redelivery after a
crash, or a restart carry on the same batch and never take more than ``daily_send_limit`` in it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from peewee import fn

from storage import clock
from storage.db import write_transaction
from storage.errors import InvalidInput, NotFound
from storage.models.accounts import User
from storage.models.campaigns import (
    PENDING,
    QUEUED,
    RECIPIENT_FAILED,
    RUNNING,
    SCHEDULED,
    Campaign,
    CampaignBatch,
    CampaignRecipient,
    Contact,
    MediaItem,
    MessageTemplate,
)
from worker.campaigns import recipients
from worker.campaigns.lifecycle import Move, target
from worker.campaigns.outcomes import complete_if_done, lock_campaign
from worker.campaigns.personalisation import render
from worker.channels import Media
from worker.logging import get_logger
from worker.outbox import Outgoing, queue_messages

log = get_logger("outreach.campaigns.batches")

# One batch a day: the next one is due this long after this one's scheduled time.
BATCH_INTERVAL = timedelta(hours=24)
# Recipients claimed and queued per transaction: a crash loses at most one chunk's work (rolled
# back, then taken again by the redelivery).
BATCH_CHUNK = 200
# A daily limit above this is a typing mistake, not a plan.
MAX_DAILY_SEND_LIMIT = 100_000
# Source of the campaign's outbox rows (outcome handlers key on it).
OUTBOX_SOURCE = "campaign"


# --- arithmetic ---------------------------------------------------------------------------------


def next_batch_time(scheduled_at: datetime, now: datetime) -> datetime:
    """24 h after this batch's scheduled time, so batches do not drift with late ticks.

    A batch that ran more than a day late (workers down, campaign paused) does not cause a
    catch-up burst: the next one is the first slot on the same time of day that is still ahead.
    """
    following = scheduled_at + BATCH_INTERVAL
    if following <= now:
        missed = (now - scheduled_at) // BATCH_INTERVAL
        following = scheduled_at + (missed + 1) * BATCH_INTERVAL
    return following


def chunk_size(daily_send_limit: int, selected: int, chunk: int = BATCH_CHUNK) -> int:
    """How many more recipients the batch may take in its next chunk (0 when it is full)."""
    return max(0, min(chunk, daily_send_limit - selected))


def validate_daily_send_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"daily_send_limit must be a whole number, got {value!r}")
    if value < 1 or value > MAX_DAILY_SEND_LIMIT:
        raise InvalidInput(f"daily_send_limit must be between 1 and {MAX_DAILY_SEND_LIMIT}")
    return value


def idempotency_key(campaign_id: int, contact_id: int) -> str:
    return f"campaign:{campaign_id}:contact:{contact_id}"


def address_for(channel: str, phone: str | None, email: str | None) -> str | None:
    """Where a contact is reached on a channel: email for email, the phone for WhatsApp."""
    if channel == "email":
        return email or None
    if channel == "whatsapp":
        return phone or None
    return phone or email or None


# --- claiming a batch ---------------------------------------------------------------------------


def claim_batch(campaign_id: int, number: int, scheduled_at: datetime) -> bool:
    """Create the batch row; False when it exists already (a racing or repeated tick)."""
    inserted = (
        CampaignBatch.insert(
            campaign=campaign_id,
            number=number,
            scheduled_at=scheduled_at,
            enqueued_at=clock.now(),
        )
        .on_conflict_ignore()
        .as_rowcount()  # SQLite returns the previous insert's id for an ignored row
        .execute()
    )
    return bool(inserted)


# --- the work of one batch ----------------------------------------------------------------------


class BatchOutcome(enum.StrEnum):
    DONE = "done"
    ALREADY_DONE = "already_done"
    SKIPPED = "skipped"  # the campaign is not running (paused, cancelled, ended)
    INTERRUPTED = "interrupted"  # paused or cancelled while the batch was running
    NO_SUCH_BATCH = "no_such_batch"  # dropped while the campaign was paused
    NOTHING_LEFT = "nothing_left"  # nobody pending: no batch recorded (completed, or waiting)


@dataclass(frozen=True)
class BatchResult:
    campaign_id: int
    batch_number: int
    outcome: BatchOutcome
    selected: int = 0


@dataclass(frozen=True)
class _Message:
    """What every recipient of the campaign shares, read once per batch."""

    channel: str
    body: str
    default_name_value: str
    media: Media | None
    account_id: int | None = None
    # The campaign's own sending hours (None: its account's).
    sending_hours: str | None = None


def _start_scheduled(campaign: Campaign) -> Campaign:
    """The first due batch of a scheduled campaign starts it (fixing its contact snapshot)."""
    target(Move.START, campaign.status)
    now = clock.now()
    with write_transaction():
        Campaign.update(
            status=RUNNING,
            started_at=now,
            updated_at=now,
            contacts_upto_id=recipients.last_contact_id(campaign.contact_list_id),
        ).where((Campaign.id == campaign.id) & (Campaign.status == SCHEDULED)).execute()
    return Campaign.get_by_id(campaign.id)


def _message_of(campaign: Campaign) -> _Message:
    template = MessageTemplate.get_by_id(campaign.template_id)
    media = None
    if campaign.media_id is not None:
        item = MediaItem.get_by_id(campaign.media_id)
        media = Media(item.location, item.mime_type)
    owner = User.select(User.id, User.account).where(User.id == campaign.owner_id).first()
    account_id = int(owner.account.id) if owner is not None else None
    return _Message(
        campaign.channel,
        template.body,
        campaign.default_name_value,
        media,
        account_id,
        campaign.sending_hours,
    )


def run_batch(campaign_id: int, batch_number: int) -> BatchResult:
    """Do batch `batch_number` of the campaign, or carry on with it; safe to run twice at once."""
    campaign = Campaign.get_or_none(Campaign.id == campaign_id)
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    batch = CampaignBatch.get_or_none(
        (CampaignBatch.campaign == campaign_id) & (CampaignBatch.number == batch_number)
    )
    if batch is None:
        log.info("campaign.batch_dropped", campaign_id=campaign_id, batch_number=batch_number)
        return BatchResult(campaign_id, batch_number, BatchOutcome.NO_SUCH_BATCH)
    if batch.finished_at is not None:
        return BatchResult(campaign_id, batch_number, BatchOutcome.ALREADY_DONE, batch.selected)
    if campaign.status == SCHEDULED:
        campaign = _start_scheduled(campaign)
    if campaign.status != RUNNING:
        _drop_unstarted(batch)
        log.info("campaign.batch_skipped", campaign_id=campaign_id, status=campaign.status)
        return BatchResult(campaign_id, batch_number, BatchOutcome.SKIPPED)

    recipients.materialise(campaign_id)
    if batch.selected == 0 and _drop_if_nothing_left(campaign_id, batch.id):
        return BatchResult(campaign_id, batch_number, BatchOutcome.NOTHING_LEFT)
    message = _message_of(campaign)
    selected = 0
    while True:
        progress = _take_chunk(campaign, batch, message)
        if progress is None:
            log.info("campaign.batch_interrupted", campaign_id=campaign_id)
            return BatchResult(campaign_id, batch_number, BatchOutcome.INTERRUPTED, selected)
        taken, wanted = progress
        selected += taken
        if taken < wanted or wanted == 0:
            break
    _finish(campaign_id, batch.id)
    log.info(
        "campaign.batch_done", campaign_id=campaign_id, batch_number=batch_number, taken=selected
    )
    return BatchResult(campaign_id, batch_number, BatchOutcome.DONE, selected)


def _drop_unstarted(batch: CampaignBatch) -> None:
    """A batch that never started is forgotten, so a resume schedules it afresh."""
    with write_transaction():
        CampaignBatch.delete().where(
            (CampaignBatch.id == batch.id)
            & CampaignBatch.started_at.is_null()
            & CampaignBatch.finished_at.is_null()
        ).execute()


def _drop_if_nothing_left(campaign_id: int, batch_id: int) -> bool:
    """A batch that would select nobody is not recorded: it is dropped, and the campaign is
    completed if every recipient has an outcome, or waits for the next tick while some sends are
    still in flight. True when the batch was dropped.

    Under the campaign's row lock, so no chunk of another delivery of this batch runs meanwhile.
    """
    now = clock.now()
    with write_transaction():
        if not lock_campaign(campaign_id, now, only_status=RUNNING):
            return False  # no longer running: the chunk loop says so
        pending = (
            CampaignRecipient.select(CampaignRecipient.id)
            .where(
                (CampaignRecipient.campaign == campaign_id) & (CampaignRecipient.status == PENDING)
            )
            .exists()
        )
        if pending:
            return False
        dropped = (
            CampaignBatch.delete()
            .where(
                (CampaignBatch.id == batch_id)
                & CampaignBatch.started_at.is_null()
                & (CampaignBatch.selected == 0)
            )
            .execute()
        )
        if not dropped:
            return False  # started by another delivery of the same message: it finishes it
        completed = complete_if_done(campaign_id, now)
    log.info("campaign.batch_not_needed", campaign_id=campaign_id, completed=completed)
    return True


def _take_chunk(
    campaign: Campaign, batch: CampaignBatch, message: _Message
) -> tuple[int, int] | None:
    """Claim and queue one chunk; (taken, wanted), or None when the campaign stopped running.

    Locks in the order every campaign transaction uses: campaign row, then batch row.
    """
    now = clock.now()
    # Inside COALESCE the field's conversion is skipped: hand it the stored form (naive UTC),
    # or SQLite keeps a "+00:00" text that compares unlike every other timestamp.
    stored_now = CampaignBatch.started_at.db_value(now)
    with write_transaction():
        if not lock_campaign(campaign.id, now, only_status=RUNNING):
            return None
        started = (
            CampaignBatch.update(started_at=fn.COALESCE(CampaignBatch.started_at, stored_now))
            .where((CampaignBatch.id == batch.id) & CampaignBatch.finished_at.is_null())
            .execute()
        )
        if not started:
            return (0, 0)  # finished by another delivery of the same message
        selected = (
            CampaignBatch.select(CampaignBatch.selected)
            .where(CampaignBatch.id == batch.id)
            .scalar()
        )
        # The first chunk of a batch moves the campaign on to it (once, whoever gets here first).
        Campaign.update(
            current_batch_number=batch.number,
            next_batch_at=next_batch_time(batch.scheduled_at, now),
            first_batch_sent_at=fn.COALESCE(Campaign.first_batch_sent_at, stored_now),
        ).where(
            (Campaign.id == campaign.id) & (Campaign.current_batch_number < batch.number)
        ).execute()
        wanted = chunk_size(campaign.daily_send_limit, selected, BATCH_CHUNK)
        if wanted == 0:
            return (0, 0)
        claimed = _claim_pending(campaign.id, batch.number, wanted, now)
        _queue(campaign.id, claimed, message, now)
        CampaignBatch.update(selected=CampaignBatch.selected + len(claimed)).where(
            CampaignBatch.id == batch.id
        ).execute()
    return (len(claimed), wanted)


def _claim_pending(
    campaign_id: int, batch_number: int, wanted: int, now: datetime
) -> list[tuple[int, int]]:
    """The next `wanted` pending recipients in contact order, moved to queued in this batch.

    Runs under the campaign's row lock (and SQLite's single writer), so nobody else claims
    recipients of this campaign meanwhile; the status condition stays as a second guard.
    """
    query = (
        CampaignRecipient.select(CampaignRecipient.id, CampaignRecipient.contact)
        .where((CampaignRecipient.campaign == campaign_id) & (CampaignRecipient.status == PENDING))
        .order_by(CampaignRecipient.contact)
        .limit(wanted)
        .tuples()
    )
    rows = cast(list[tuple[int, int]], list(query))
    if not rows:
        return []
    moved = (
        CampaignRecipient.update(status=QUEUED, batch_number=batch_number, queued_at=now)
        .where(
            CampaignRecipient.id.in_([recipient_id for recipient_id, _ in rows])
            & (CampaignRecipient.status == PENDING)
        )
        .execute()
    )
    if moved != len(rows):
        # Someone claimed under our lock: roll the chunk back and let the retry take it again.
        raise RuntimeError(
            f"campaign {campaign_id}: {len(rows) - moved} recipients were claimed concurrently"
        )
    return rows


def _queue(
    campaign_id: int, claimed: list[tuple[int, int]], message: _Message, now: datetime
) -> None:
    """Queue the claimed recipients' messages through the outbox in one go; a contact with no
    address for the channel is failed now, with the reason."""
    if not claimed:
        return
    query = (
        Contact.select(Contact.id, Contact.phone, Contact.email, Contact.first_name)
        .where(Contact.id.in_([contact_id for _, contact_id in claimed]))
        .tuples()
    )
    contacts = {
        row[0]: row[1:] for row in cast(list[tuple[int, str | None, str | None, str | None]], query)
    }
    outgoing = []
    for recipient_id, contact_id in claimed:
        phone, email, first_name = contacts[contact_id]
        address = address_for(message.channel, phone, email)
        if address is None:
            what = "email address" if message.channel == "email" else "phone number"
            _fail_now(recipient_id, f"contact has no {what} for the {message.channel} channel", now)
            continue
        outgoing.append(
            Outgoing(
                idempotency_key(campaign_id, contact_id),
                message.channel,
                address,
                render(message.body, first_name, message.default_name_value),
                message.media,
            )
        )
    queue_messages(
        outgoing,
        source=OUTBOX_SOURCE,
        account_id=message.account_id,
        sending_hours=message.sending_hours,
    )


def _fail_now(recipient_id: int, error: str, now: datetime) -> None:
    CampaignRecipient.update(status=RECIPIENT_FAILED, error=error, finished_at=now).where(
        CampaignRecipient.id == recipient_id
    ).execute()


def _finish(campaign_id: int, batch_id: int) -> None:
    """Record the batch as done with what is left, and complete the campaign if nothing is."""
    now = clock.now()
    with write_transaction():
        lock_campaign(campaign_id, now)
        remaining = (
            CampaignRecipient.select()
            .where(
                (CampaignRecipient.campaign == campaign_id) & (CampaignRecipient.status == PENDING)
            )
            .count()
        )
        CampaignBatch.update(finished_at=now, remaining=remaining).where(
            (CampaignBatch.id == batch_id) & CampaignBatch.finished_at.is_null()
        ).execute()
        complete_if_done(campaign_id, now)


def mark_failed(campaign_id: int, error: str) -> bool:
    """The campaign's run broke on an unexpected error: it is failed, with the error kept."""
    now = clock.now()
    with write_transaction():
        moved = (
            Campaign.update(
                status=target(Move.FAIL, RUNNING),
                last_error=error[:2000],
                completed_at=now,
                next_batch_at=None,
                updated_at=now,
            )
            .where((Campaign.id == campaign_id) & (Campaign.status.in_([SCHEDULED, RUNNING])))
            .execute()
        )
    if moved:
        log.error("campaign.failed", campaign_id=campaign_id, error=error)
    return bool(moved)
