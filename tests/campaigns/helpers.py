"""Helpers for campaign tests: deliver what the outbox holds, read back what happened."""

from __future__ import annotations

from storage.models import Campaign, CampaignBatch, CampaignRecipient, OutboxMessage
from worker.delivery import deliver_many


def deliver_queued() -> int:
    """Deliver every queued outbox row as one group (the delivery actor's work, without the
    broker): a window's outcomes reach the campaigns together, as they do in a worker."""
    ids = [
        row.id
        for row in OutboxMessage.select(OutboxMessage.id)
        .where(OutboxMessage.status == "queued")
        .order_by(OutboxMessage.id)
    ]
    deliver_many(ids)
    return len(ids)


def reload(campaign: Campaign) -> Campaign:
    return Campaign.get_by_id(campaign.id)


def recipients_by_status(campaign: Campaign) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in CampaignRecipient.select().where(CampaignRecipient.campaign == campaign.id):
        counts[r.status] = counts.get(r.status, 0) + 1
    return counts


def outbox_keys() -> list[str]:
    return [
        row.idempotency_key
        for row in OutboxMessage.select(OutboxMessage.idempotency_key).order_by(OutboxMessage.id)
    ]


def batch_rows(campaign: Campaign) -> list[CampaignBatch]:
    return list(
        CampaignBatch.select()
        .where(CampaignBatch.campaign == campaign.id)
        .order_by(CampaignBatch.number)
    )
