"""What `outreach status` reports: queues, dead letters, the outbox, campaigns, schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from peewee import fn

from producers.dlq import DELAY_SUFFIX, dead_letter_queues
from producers.scheduler.firing import next_fire
from producers.scheduler.records import describe, last_fires
from producers.scheduler.schedules import Schedule
from storage.models.outbox import STATUSES, OutboxMessage
from worker.redis_delays import DELAYED_SUFFIX, IDS_SUFFIX

# Campaigns listed at most (the oldest in progress first).
CAMPAIGNS_SHOWN = 50


def queue_depths(broker: dramatiq.Broker) -> list[dict[str, Any]]:
    """Per queue: ready, in flight (fetched, not acked), delayed (deferred sends and retries
    waiting for their time: worker.redis_delays, and Dramatiq's own delay queue), dead."""
    if not isinstance(broker, RedisBroker):
        return []
    names = {q for q in broker.get_declared_queues() if not q.endswith(DELAY_SUFFIX)}
    names |= set(dead_letter_queues(broker))
    ordered = sorted(names)
    pipe = broker.client.pipeline(transaction=False)
    for name in ordered:
        key = f"{broker.namespace}:{name}"
        pipe.llen(key)
        pipe.hlen(f"{key}.msgs")
        pipe.hlen(f"{key}{DELAY_SUFFIX}.msgs")
        pipe.zcard(f"{key}{DELAYED_SUFFIX}")
        pipe.zcard(f"{key}{IDS_SUFFIX}")
        pipe.zcard(f"{key}.XQ")
    values = pipe.execute()
    depths = []
    for index, name in enumerate(ordered):
        ready, stored, delayed, waiting, ids, dead = values[index * 6 : index * 6 + 6]
        depths.append(
            {
                "queue": name,
                "ready": ready,
                "in_flight": max(0, stored - ready),
                "delayed": delayed + waiting + ids,
                "dead": dead,
            }
        )
    return depths


def outbox_counts() -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    query = OutboxMessage.select(OutboxMessage.status, fn.COUNT(OutboxMessage.id)).group_by(
        OutboxMessage.status
    )
    for status, count in query.tuples().iterator():
        counts[str(status)] = int(count)
    return counts


def campaigns_in_progress(limit: int = CAMPAIGNS_SHOWN) -> list[dict[str, Any]] | None:
    """Running and paused campaigns with their recipients by status; None without campaigns."""
    try:
        from storage.models.campaigns import PAUSED, RUNNING, Campaign, CampaignRecipient
    except ImportError:
        return None
    campaigns = list(
        Campaign.select()
        .where(Campaign.status.in_([RUNNING, PAUSED]))
        .order_by(Campaign.id)
        .limit(limit)
    )
    ids = [c.id for c in campaigns]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    if ids:
        # One grouped query for every campaign shown.
        query = (
            CampaignRecipient.select(
                CampaignRecipient.campaign, CampaignRecipient.status, fn.COUNT(CampaignRecipient.id)
            )
            .where(CampaignRecipient.campaign.in_(ids))
            .group_by(CampaignRecipient.campaign, CampaignRecipient.status)
            .tuples()
        )
        for campaign_id, status, count in query.iterator():
            counts[int(campaign_id)][str(status)] = int(count)
    return [
        {
            "id": c.id,
            "name": c.name,
            "status": c.status,
            "batches": c.current_batch_number,
            "next_batch_at": c.next_batch_at.isoformat() if c.next_batch_at else None,
            "recipients": counts[c.id],
        }
        for c in campaigns
    ]


def schedules_status(schedules: list[Schedule], now: datetime) -> list[dict[str, Any]]:
    recorded = last_fires()
    return [
        {
            "name": s.name,
            "cron": s.cron,
            "timezone": s.timezone,
            "next_fire_time": next_fire(s, now).at.isoformat(),
            **describe(recorded.get(s.name)),
        }
        for s in schedules
    ]


def collect(broker: dramatiq.Broker, schedules: list[Schedule], now: datetime) -> dict[str, Any]:
    return {
        "broker": "redis" if isinstance(broker, RedisBroker) else "embedded",
        "queues": queue_depths(broker),
        "outbox": outbox_counts(),
        "campaigns": campaigns_in_progress(),
        "schedules": schedules_status(schedules, now),
    }
