"""A campaign's progress as one report: status, counts per recipient status, batch history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from peewee import fn

from storage.models.campaigns import (
    PENDING,
    QUEUED,
    RECIPIENT_FAILED,
    SENT,
    CampaignBatch,
    CampaignRecipient,
)
from worker.campaigns.control import get_campaign


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def campaign_status(campaign_id: int) -> dict[str, Any]:
    """A few grouped queries and the batch rows, whatever the size of the campaign."""
    campaign = get_campaign(campaign_id)
    counts = dict.fromkeys((PENDING, QUEUED, SENT, RECIPIENT_FAILED), 0)
    by_status = (
        CampaignRecipient.select(CampaignRecipient.status, fn.COUNT(CampaignRecipient.id))
        .where(CampaignRecipient.campaign == campaign_id)
        .group_by(CampaignRecipient.status)
        .tuples()
    )
    counts.update(cast(list[tuple[str, int]], list(by_status)))
    # Sent and failed per batch, from the recipients each batch took.
    outcomes = (
        CampaignRecipient.select(
            CampaignRecipient.batch_number, CampaignRecipient.status, fn.COUNT(CampaignRecipient.id)
        )
        .where(
            (CampaignRecipient.campaign == campaign_id)
            & CampaignRecipient.batch_number.is_null(False)
            & CampaignRecipient.status.in_([SENT, RECIPIENT_FAILED])
        )
        .group_by(CampaignRecipient.batch_number, CampaignRecipient.status)
        .tuples()
    )
    per_batch: dict[tuple[int, str], int] = {
        (number, status): count
        for number, status, count in cast(list[tuple[int, str, int]], list(outcomes))
    }
    batches = [
        {
            "number": batch.number,
            "scheduled_at": _iso(batch.scheduled_at),
            "started_at": _iso(batch.started_at),
            "finished_at": _iso(batch.finished_at),
            "selected": batch.selected,
            "sent": per_batch.get((batch.number, SENT), 0),
            "failed": per_batch.get((batch.number, RECIPIENT_FAILED), 0),
            "remaining": batch.remaining,
        }
        for batch in CampaignBatch.select()
        .where(CampaignBatch.campaign == campaign_id)
        .order_by(CampaignBatch.number)
    ]
    return {
        "id": campaign.id,
        "name": campaign.name,
        "owner_id": campaign.owner_id,
        "status": campaign.status,
        "channel": campaign.channel,
        "contact_list_id": campaign.contact_list_id,
        "daily_send_limit": campaign.daily_send_limit,
        "recipients": campaign.recipients_total,
        "pending": counts[PENDING],
        "queued": counts[QUEUED],
        "sent": counts[SENT],
        "failed": counts[RECIPIENT_FAILED],
        # Not sent yet, one way or the other: waiting for a batch, or in the outbox.
        "remaining": counts[PENDING] + counts[QUEUED],
        "created_at": _iso(campaign.created_at),
        "started_at": _iso(campaign.started_at),
        "first_batch_sent_at": _iso(campaign.first_batch_sent_at),
        "next_batch_at": _iso(campaign.next_batch_at),
        "current_batch_number": campaign.current_batch_number,
        "completed_at": _iso(campaign.completed_at),
        "last_error": campaign.last_error,
        "batches": batches,
    }
