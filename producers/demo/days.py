"""What one simulated day did, read back from the database: per hunt, for the campaign, for
engagement, the messages queued, and the scheduler's fires (failed ones with their error)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from peewee import fn

from producers.demo.queries import campaign_sent, counts, engagement_states, tuples, window
from producers.demo.sample_data import SampleData
from producers.scheduler.loop import FireOutcome
from storage.models.campaigns import Campaign, CampaignBatch, CampaignRecipient
from storage.models.engagement import (
    SKIPPED,
    EngagementOutcome,
    EngagementRun,
    EngagementTransition,
)
from storage.models.hunts import ALL_CHANNELS, ContactedAd, Hunt, HuntChannelCredit, HuntPacing
from storage.models.outbox import OutboxMessage
from worker.hunts.pacing import local_day


def _hunts_day(data: SampleData, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = []
    for name, hunt_id in data.hunts.items():
        hunt = Hunt.get_by_id(hunt_id)
        contacted = Counter(
            channel
            for (channel,) in tuples(
                ContactedAd.select(ContactedAd.channel).where(
                    (ContactedAd.hunt == hunt_id) & window(ContactedAd.contacted_at, start, end)
                )
            )
        )
        day = local_day(hunt.account.timezone, start + timedelta(hours=12))
        paced = (
            HuntPacing.select(HuntPacing.count)
            .where(
                (HuntPacing.hunt == hunt_id)
                & (HuntPacing.day == day)
                & (HuntPacing.channel == ALL_CHANNELS)
            )
            .scalar()
        ) or 0
        credits = {
            row.channel: row.allocated - row.reserved - row.consumed
            for row in HuntChannelCredit.select().where(HuntChannelCredit.hunt == hunt_id)
        }
        total = sum(contacted.values())
        limit = hunt.daily_pacing_limit
        if limit is not None and total >= limit:
            stopped = "limit reached"
        elif not any(credits.values()):
            stopped = "out of credits"
        else:
            stopped = "no more new matching ads"
        rows.append(
            {
                "hunt_id": hunt_id,
                "name": name,
                "day": day.isoformat(),
                "limit": limit,
                "contacted": total,
                "pacing_count": paced,
                "by_channel": dict(sorted(contacted.items())),
                "credits_left": credits,
                "stopped_by": stopped,
            }
        )
    return rows


def _campaign_day(data: SampleData, start: datetime, end: datetime) -> dict[str, Any]:
    campaign = Campaign.get_by_id(data.campaign_id)
    batches = []
    for batch in (
        CampaignBatch.select()
        .where(
            (CampaignBatch.campaign == data.campaign_id)
            & window(CampaignBatch.started_at, start, end)
        )
        .order_by(CampaignBatch.number)
    ):
        sent = (
            CampaignRecipient.select()
            .where(
                (CampaignRecipient.campaign == data.campaign_id)
                & (CampaignRecipient.batch_number == batch.number)
                & (CampaignRecipient.status == "sent")
            )
            .count()
        )
        batches.append(
            {
                "number": batch.number,
                "size": batch.selected,
                "sent": sent,
                "at": batch.started_at.isoformat(),
                "remaining": batch.remaining,
            }
        )
    completed_today = campaign.completed_at is not None and start <= campaign.completed_at < end
    return {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "daily_send_limit": campaign.daily_send_limit,
        "batches": batches,
        "status": campaign.status,
        "completed_at": campaign.completed_at.isoformat() if completed_today else None,
        "sent_so_far": campaign_sent(data.campaign_id),
        "next_batch_at": campaign.next_batch_at.isoformat() if campaign.next_batch_at else None,
    }


def _engagement_day(start: datetime, end: datetime) -> dict[str, Any]:
    from worker.engagement.process import OPTED_OUT

    transitions = Counter(
        f"{from_state} -> {to_state} ({trigger})"
        for from_state, to_state, trigger in tuples(
            EngagementTransition.select(
                EngagementTransition.from_state,
                EngagementTransition.to_state,
                EngagementTransition.trigger,
            ).where(window(EngagementTransition.at, start, end))
        )
    )
    goodbyes = (
        OutboxMessage.select()
        .where(
            (OutboxMessage.source == "engagement") & window(OutboxMessage.created_at, start, end)
        )
        .count()
    )
    opted_out = (
        EngagementOutcome.select()
        .join(EngagementRun)
        .where(
            window(EngagementRun.started_at, start, end)
            & (EngagementOutcome.outcome == SKIPPED)
            & (EngagementOutcome.detail == OPTED_OUT)
        )
        .count()
    )
    return {
        "transitions": dict(sorted(transitions.items())),
        "goodbyes_sent": goodbyes,
        "skipped_opted_out": opted_out,
        "states": engagement_states(),
    }


def _messages_day(start: datetime, end: datetime) -> dict[str, int]:
    return counts(
        OutboxMessage.select(OutboxMessage.source, fn.COUNT(OutboxMessage.id))
        .where(window(OutboxMessage.created_at, start, end))
        .group_by(OutboxMessage.source)
        .order_by(OutboxMessage.source)
    )


def _fires(outcomes: list[FireOutcome]) -> tuple[dict[str, int], list[dict[str, str]]]:
    fired = Counter(outcome.fire.schedule for outcome in outcomes)
    failed = [
        {
            "schedule": outcome.fire.schedule,
            "fire_time": outcome.fire.at.isoformat(),
            "error": outcome.error,
        }
        for outcome in outcomes
        if outcome.error is not None
    ]
    return dict(sorted(fired.items())), failed


def day_report(
    number: int, data: SampleData, start: datetime, end: datetime, outcomes: list[FireOutcome]
) -> dict[str, Any]:
    fired, failed = _fires(outcomes)
    return {
        "day": number,
        "date": start.date().isoformat(),
        "fires": fired,
        "failed_fires": failed,
        "hunts": _hunts_day(data, start, end),
        "campaign": _campaign_day(data, start, end),
        "engagement": _engagement_day(start, end),
        "messages_queued": _messages_day(start, end),
    }
