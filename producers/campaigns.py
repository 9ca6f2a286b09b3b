"""The campaign tick: find campaigns whose next batch is due, enqueue one message per batch.

Each batch is claimed by inserting its row (unique campaign + batch number) before its message
is enqueued, so two ticks racing, a tick repeated for the same fire time, or a tick while the
batch is still waiting in the queue enqueue nothing more. A batch row whose message was lost
(the process died between commit and enqueue, Redis lost it) is enqueued again after a while,
and a running campaign left with nothing outstanding is completed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dramatiq

from storage import clock
from storage.clock import as_utc
from storage.db import database, write_transaction
from storage.errors import InvalidState
from storage.models.campaigns import Campaign, CampaignBatch
from worker.campaigns.batches import claim_batch
from worker.campaigns.control import get_campaign
from worker.campaigns.lifecycle import DUE_STATUSES
from worker.campaigns.outcomes import complete_settled_campaigns
from worker.enqueue import enqueue_many
from worker.logging import get_logger

log = get_logger("outreach.producers.campaigns")

# Due campaigns read and claimed per page (keyset pagination on the id).
TICK_PAGE = 500
# An unfinished batch whose message was last enqueued this long ago is enqueued again.
STALE_BATCH_AFTER = timedelta(minutes=15)


def _message(campaign_id: int, batch_number: int) -> dramatiq.Message:
    from worker.actors.campaigns import run_campaign_batch

    return run_campaign_batch.message(campaign_id, batch_number)


def tick(fire_time: datetime) -> dict[str, Any]:
    """Enqueue every batch due at `fire_time`; safe to run twice, and from two schedulers."""
    fire_time = as_utc(fire_time)
    due = enqueued = 0
    last_id = 0
    with database.connection_context():
        while True:
            page = list(
                Campaign.select(Campaign.id, Campaign.current_batch_number, Campaign.next_batch_at)
                .where(
                    Campaign.status.in_(DUE_STATUSES)
                    & (Campaign.next_batch_at <= fire_time)
                    & (Campaign.id > last_id)
                )
                .order_by(Campaign.id)
                .limit(TICK_PAGE)
            )
            if not page:
                break
            last_id = page[-1].id
            due += len(page)
            with write_transaction():
                claimed = [
                    (c.id, c.current_batch_number + 1)
                    for c in page
                    if claim_batch(c.id, c.current_batch_number + 1, c.next_batch_at)
                ]
            # After the commit: a crash before this line leaves rows the stale pass repairs.
            enqueued += enqueue_many(_message(*batch) for batch in claimed)
        requeued = requeue_stale_batches()
        completed = complete_settled_campaigns()
    result = {
        "fire_time": fire_time.isoformat(),
        "due": due,
        "enqueued": enqueued,
        "requeued": requeued,
        "completed": completed,
    }
    if due or requeued or completed:
        log.info("campaign.tick", **result)
    return result


def requeue_stale_batches(limit: int = 1000) -> int:
    """Enqueue again the unfinished batches of running campaigns whose message went missing.

    Measured on the clock, not the fire time: a catch-up fire must not take a batch enqueued a
    moment ago for a lost one.
    """
    cutoff = clock.now() - STALE_BATCH_AFTER
    stale = list(
        CampaignBatch.select(CampaignBatch.id, CampaignBatch.campaign, CampaignBatch.number)
        .join(Campaign)
        .where(
            CampaignBatch.finished_at.is_null()
            & (CampaignBatch.enqueued_at < cutoff)
            & Campaign.status.in_(DUE_STATUSES)
        )
        .order_by(CampaignBatch.id)
        .limit(limit)
    )
    again = []
    for batch in stale:
        # Conditional: another tick may have enqueued it since it was read.
        with write_transaction():
            touched = (
                CampaignBatch.update(enqueued_at=clock.now())
                .where(
                    (CampaignBatch.id == batch.id)
                    & CampaignBatch.finished_at.is_null()
                    & (CampaignBatch.enqueued_at < cutoff)
                )
                .execute()
            )
        if touched:
            again.append((batch.campaign_id, batch.number))
    return enqueue_many(_message(*batch) for batch in again)


def enqueue_batch(campaign_id: int) -> dict[str, Any]:
    """Run a campaign's batch now (ad hoc): its unfinished batch again, or the next one if due.

    Never a batch ahead of time: the daily limit would not hold. A campaign with nothing to run
    now is refused with the time its next batch is due.
    """
    with database.connection_context():
        campaign = get_campaign(campaign_id)
        if campaign.status not in DUE_STATUSES:
            raise InvalidState(f"campaign {campaign_id} is {campaign.status}: no batch to run")
        batch = _enqueue_current(campaign)
        if batch is None:
            due = campaign.next_batch_at.isoformat() if campaign.next_batch_at else "never"
            raise InvalidState(f"campaign {campaign_id}: no batch is due (next one at {due})")
    return {"campaign_id": campaign_id, "batch_number": batch, "enqueued": 1}


def enqueue_if_due(campaign_id: int) -> int | None:
    """As enqueue_batch, without refusing: the batch number enqueued, or None."""
    with database.connection_context():
        campaign = get_campaign(campaign_id)
        if campaign.status not in DUE_STATUSES:
            return None
        return _enqueue_current(campaign)


def _enqueue_current(campaign: Campaign) -> int | None:
    unfinished = (
        CampaignBatch.select(CampaignBatch.number)
        .where((CampaignBatch.campaign == campaign.id) & CampaignBatch.finished_at.is_null())
        .order_by(CampaignBatch.number.desc())
        .scalar()
    )
    if unfinished is not None:
        with write_transaction():
            CampaignBatch.update(enqueued_at=clock.now()).where(
                (CampaignBatch.campaign == campaign.id) & (CampaignBatch.number == unfinished)
            ).execute()
        enqueue_many([_message(campaign.id, unfinished)])
        return int(unfinished)
    if campaign.next_batch_at is None or campaign.next_batch_at > clock.now():
        return None
    number = campaign.current_batch_number + 1
    with write_transaction():
        claimed = claim_batch(campaign.id, number, campaign.next_batch_at)
    if claimed:
        enqueue_many([_message(campaign.id, number)])
        return number
    return None
