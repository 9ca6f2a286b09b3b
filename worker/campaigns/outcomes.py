"""Delivery results flow back to the recipient rows, and the campaign completes when all are in.

Registered on the outbox for source "campaign": called in the delivery's own transaction when a
campaign message ends (sent, failed, or unknown: a send that died mid-way, recorded as failed
with that reason so an operator sees it). When no recipient is pending any more, the campaign
row is locked before the completion check, so of two last outcomes arriving together the later
one sees the other committed and completes the campaign.
"""

from __future__ import annotations

import re
from datetime import datetime

from peewee import SQL, fn

from storage import clock
from storage.db import write_transaction
from storage.models.campaigns import (
    COMPLETED,
    OUTSTANDING,
    PENDING,
    QUEUED,
    RECIPIENT_FAILED,
    RUNNING,
    SENT,
    Campaign,
    CampaignRecipient,
)
from storage.models.outbox import FAILED as OUTBOX_FAILED
from storage.models.outbox import SENT as OUTBOX_SENT
from storage.models.outbox import OutboxMessage
from worker.logging import get_logger
from worker.outbox import on_outcome

log = get_logger("outreach.campaigns.outcomes")

_KEY = re.compile(r"^campaign:(\d+):contact:(\d+)$")


def parse_key(idempotency_key: str) -> tuple[int, int] | None:
    """(campaign id, contact id) of a campaign message's key; None for any other key."""
    match = _KEY.match(idempotency_key)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def lock_campaign(campaign_id: int, now: datetime, only_status: str | None = None) -> bool:
    """Take the campaign's row lock for this transaction (PostgreSQL; SQLite has one writer).

    A touch of `updated_at`: the same statement on both backends, and it says whether the row
    (in `only_status`, when given) exists.
    """
    query = Campaign.update(updated_at=now).where(Campaign.id == campaign_id)
    if only_status is not None:
        query = query.where(Campaign.status == only_status)
    return bool(query.execute())


def complete_if_done(campaign_id: int, now: datetime) -> bool:
    """A running campaign with every recipient made and none pending or queued is completed.

    Call it with the campaign's row lock held, so the check sees every other outcome committed.
    """
    outstanding = CampaignRecipient.select(CampaignRecipient.id).where(
        (CampaignRecipient.campaign == campaign_id) & CampaignRecipient.status.in_(OUTSTANDING)
    )
    completed = (
        Campaign.update(status=COMPLETED, completed_at=now, next_batch_at=None, updated_at=now)
        .where(
            (Campaign.id == campaign_id)
            & (Campaign.status == RUNNING)
            & Campaign.recipients_ready_at.is_null(False)
            & ~fn.EXISTS(outstanding)
        )
        .execute()
    )
    if completed:
        log.info("campaign.completed", campaign_id=campaign_id)
    return bool(completed)


def complete_settled_campaigns(limit: int = 1000) -> int:
    """Complete running campaigns left with nothing outstanding (the tick's repair pass).

    An outcome that saw a pending recipient does not check for completion; if that recipient
    was claimed and finished in the instant before the outcome committed, nobody completed the
    campaign. This finds such campaigns.
    """
    outstanding = CampaignRecipient.select(CampaignRecipient.id).where(
        (CampaignRecipient.campaign == Campaign.id) & CampaignRecipient.status.in_(OUTSTANDING)
    )
    settled = [
        campaign.id
        for campaign in Campaign.select(Campaign.id)
        .where(
            (Campaign.status == RUNNING)
            & Campaign.recipients_ready_at.is_null(False)
            & ~fn.EXISTS(outstanding)
        )
        .order_by(Campaign.id)
        .limit(limit)
    ]
    completed = 0
    for campaign_id in settled:
        now = clock.now()
        with write_transaction():
            lock_campaign(campaign_id, now)
            completed += complete_if_done(campaign_id, now)
    return completed


@on_outcome("campaign")
def record_delivery_outcome(message: OutboxMessage) -> None:
    """One statement in the usual case: the recipient's result, and whether any is pending."""
    ids = parse_key(message.idempotency_key)
    if ids is None:
        log.warning("campaign.outcome_unknown_key", outbox_id=message.id)
        return
    campaign_id, contact_id = ids
    now = clock.now()
    if message.status == OUTBOX_SENT:
        status, error = SENT, None
    elif message.status == OUTBOX_FAILED:
        status, error = RECIPIENT_FAILED, message.last_error or "failed"
    else:
        status = RECIPIENT_FAILED
        error = f"outcome unknown: {message.last_error or 'the send was interrupted'}"
    pending = CampaignRecipient.select(SQL("1")).where(
        (CampaignRecipient.campaign == campaign_id) & (CampaignRecipient.status == PENDING)
    )
    recorded = list(
        CampaignRecipient.update(status=status, error=error, finished_at=now)
        .where(
            (CampaignRecipient.campaign == campaign_id)
            & (CampaignRecipient.contact == contact_id)
            & (CampaignRecipient.status == QUEUED)
        )
        .returning(fn.EXISTS(pending))
        .tuples()
        .execute()
    )
    if not recorded:
        return  # already recorded (an outcome reported twice changes nothing)
    if recorded[0][0]:
        return  # recipients still wait for a batch: the campaign cannot be complete yet
    # Possibly the last one: under the campaign's lock, every other outcome is committed or waits.
    lock_campaign(campaign_id, now)
    complete_if_done(campaign_id, now)
