"""The demo's summary over all its days, and its problems: what the demo itself checks (every
fire ran, the campaign completed, no hunt over its limit, nothing contacted or sent twice, nothing
left unsent) before it says everything went as it should."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from peewee import fn

from producers.demo.queries import campaign_sent, counts, duplicates, engagement_states, tuples
from producers.demo.replies import consent_summary
from producers.demo.sample_data import CAMPAIGN_CONTACTS, SampleData
from storage.models.campaigns import Campaign, CampaignBatch
from storage.models.hunts import ContactedAd, Hunt
from storage.models.outbox import OutboxMessage


def summarize(data: SampleData, days: list[dict[str, Any]]) -> dict[str, Any]:
    campaign = Campaign.get_by_id(data.campaign_id)
    batch_sizes = [
        int(size)
        for (size,) in tuples(
            CampaignBatch.select(CampaignBatch.selected)
            .where(CampaignBatch.campaign == data.campaign_id)
            .order_by(CampaignBatch.number)
        )
    ]
    hunts = []
    for name, hunt_id in data.hunts.items():
        by_day = [next(h for h in day["hunts"] if h["hunt_id"] == hunt_id) for day in days]
        limit = by_day[0]["limit"]
        hunts.append(
            {
                "hunt_id": hunt_id,
                "name": name,
                "limit": limit,
                "contacted_by_day": [h["contacted"] for h in by_day],
                "contacted": sum(h["contacted"] for h in by_day),
                "credits_left": by_day[-1]["credits_left"],
                "within_limit": limit is None or all(h["contacted"] <= limit for h in by_day),
            }
        )
    transitions: Counter[str] = Counter()
    for day in days:
        transitions.update(day["engagement"]["transitions"])
    by_status = counts(
        OutboxMessage.select(OutboxMessage.status, fn.COUNT(OutboxMessage.id))
        .group_by(OutboxMessage.status)
        .order_by(OutboxMessage.status)
    )
    by_source = counts(
        OutboxMessage.select(OutboxMessage.source, fn.COUNT(OutboxMessage.id))
        .group_by(OutboxMessage.source)
        .order_by(OutboxMessage.source)
    )
    duplicate_keys = duplicates(
        OutboxMessage.select(OutboxMessage.idempotency_key).group_by(OutboxMessage.idempotency_key)
    )
    ads_contacted_twice = duplicates(
        ContactedAd.select(Hunt.account, ContactedAd.ad)
        .join(Hunt)
        .group_by(Hunt.account, ContactedAd.ad)
    )
    fires: Counter[str] = Counter()
    for day in days:
        fires.update(day["fires"])
    summary = {
        "campaign": {
            "campaign_id": campaign.id,
            "name": campaign.name,
            "contacts": CAMPAIGN_CONTACTS,
            "daily_send_limit": campaign.daily_send_limit,
            "batch_sizes": batch_sizes,
            "sent": campaign_sent(campaign.id),
            "status": campaign.status,
            "completed_at": campaign.completed_at.isoformat() if campaign.completed_at else None,
        },
        "hunts": hunts,
        "engagement": {
            "transitions": dict(sorted(transitions.items())),
            "goodbyes_sent": sum(day["engagement"]["goodbyes_sent"] for day in days),
            "skipped_opted_out": sum(day["engagement"]["skipped_opted_out"] for day in days),
            "states": engagement_states(),
        },
        "outbox": {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_source": by_source,
            "duplicate_keys": duplicate_keys,
        },
        "ads_contacted_twice": ads_contacted_twice,
        "fires": dict(sorted(fires.items())),
        "failed_fires": sum(len(day["failed_fires"]) for day in days),
        "consent": consent_summary(),
    }
    summary["problems"] = find_problems(summary)
    return summary


def find_problems(summary: dict[str, Any]) -> list[str]:
    """What the demo itself checks before it says everything went as it should."""
    problems = []
    if summary["failed_fires"]:
        problems.append(f"{summary['failed_fires']} scheduled fire(s) failed (see the log file)")
    campaign = summary["campaign"]
    if campaign["status"] != "completed" or campaign["sent"] != campaign["contacts"]:
        problems.append(
            f"the campaign is {campaign['status']} with {campaign['sent']} of "
            f"{campaign['contacts']} messages sent"
        )
    for hunt in summary["hunts"]:
        if not hunt["within_limit"]:
            problems.append(f"hunt {hunt['hunt_id']} went over its daily limit")
    if summary["ads_contacted_twice"]:
        problems.append(f"{summary['ads_contacted_twice']} ad(s) contacted twice")
    outbox = summary["outbox"]
    if outbox["duplicate_keys"]:
        problems.append(f"{outbox['duplicate_keys']} idempotency key(s) in the outbox twice")
    unsent = outbox["total"] - outbox["by_status"].get("sent", 0)
    if unsent:
        problems.append(f"{unsent} message(s) not sent")
    return problems


def count_log_sends(log_path: Path) -> dict[str, int]:
    """How many times the log channel sent each key (every send is one `message.sent` line)."""
    sends: Counter[str] = Counter()
    with log_path.open(encoding="utf-8") as lines:
        for line in lines:
            if '"message.sent"' not in line:
                continue
            event = json.loads(line)
            if event.get("event") == "message.sent":
                sends[event.get("idempotency_key", "")] += 1
    return dict(sends)


def add_log_sends(summary: dict[str, Any], log_path: Path) -> None:
    """Count the log channel's sends into `summary`; a key sent twice is one more problem."""
    sends = count_log_sends(log_path)
    summary["log_channel_sends"] = sum(sends.values())
    sent_twice = sorted(key for key, count in sends.items() if count > 1)
    if sent_twice:
        summary["problems"].append(f"{len(sent_twice)} message(s) sent twice: {sent_twice[:3]}")
