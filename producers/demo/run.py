"""Driving the demo: load the sample data, fire the real schedules day after day, and read back
from the database what each day did.

The scheduler is the real one (:func:`producers.scheduler.loop.build_scheduler`, with the
default schedules), on the in-process broker: after every fire it does the work the fire
enqueued, deliveries included. A fake clock moves from fire to fire, so four days take seconds.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from peewee import fn

from producers.demo.replies import consent_summary, simulate_replies
from producers.demo.runtime import Runtime, embedded_runtime
from producers.demo.sample_data import (
    CAMPAIGN_CONTACTS,
    DEMO_DAYS,
    DEMO_START,
    SampleData,
    load_sample_data,
)
from producers.embedded import drain
from producers.scheduler.loop import FireOutcome
from storage.errors import InvalidInput
from storage.models.campaigns import Campaign, CampaignBatch, CampaignRecipient
from storage.models.engagement import (
    SKIPPED,
    EngagementOutcome,
    EngagementRun,
    EngagementState,
    EngagementTransition,
)
from storage.models.hunts import ALL_CHANNELS, ContactedAd, Hunt, HuntChannelCredit, HuntPacing
from storage.models.outbox import OutboxMessage
from worker.hunts.pacing import local_day

DATABASE_NAME = "outreach-demo.sqlite3"
# The day people write back (see producers.demo.replies), at noon UTC.
REPLY_DAY = 2
REPLY_AT = timedelta(hours=12)
# A day is simulated up to one minute before midnight, so that each fire falls in its own day.
DAY_END_MARGIN = timedelta(minutes=1)


@dataclass(frozen=True)
class DemoPaths:
    database: Path
    log: Path


def demo_paths(database: Path | None) -> DemoPaths:
    """Where the demo writes: `database` (which must not exist) or a fresh temporary directory.

    The JSON log goes next to the database. Raises InvalidInput before anything is written.
    """
    if database is None:
        directory = Path(tempfile.mkdtemp(prefix="outreach-demo-"))
        return DemoPaths(directory / DATABASE_NAME, directory / "outreach-demo.log")
    database = database.expanduser().absolute()
    if database.exists():
        raise InvalidInput(
            f"--database {database} already exists; the demo needs a path for a new file"
        )
    log = database.with_suffix(".log")
    if log == database:
        log = database.with_name(database.name + ".log")
    if log.exists():
        raise InvalidInput(f"the demo's log file {log} already exists; choose another --database")
    if not database.parent.is_dir():
        raise InvalidInput(f"--database {database}: directory {database.parent} does not exist")
    return DemoPaths(database, log)


def _window(column: Any, start: datetime, end: datetime) -> Any:
    return (column >= start) & (column < end)


def _tuples(query: Any) -> list[tuple[Any, ...]]:
    return cast(list[tuple[Any, ...]], list(query.tuples()))


def _counts(query: Any) -> dict[str, int]:
    """A (key, count) query as a dict."""
    return {str(key): int(count) for key, count in _tuples(query)}


def _hunts_day(data: SampleData, start: datetime, end: datetime) -> list[dict[str, Any]]:
    rows = []
    for name, hunt_id in data.hunts.items():
        hunt = Hunt.get_by_id(hunt_id)
        contacted = Counter(
            channel
            for (channel,) in _tuples(
                ContactedAd.select(ContactedAd.channel).where(
                    (ContactedAd.hunt == hunt_id) & _window(ContactedAd.contacted_at, start, end)
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
            & _window(CampaignBatch.started_at, start, end)
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
        "sent_so_far": _campaign_sent(data.campaign_id),
        "next_batch_at": campaign.next_batch_at.isoformat() if campaign.next_batch_at else None,
    }


def _campaign_sent(campaign_id: int) -> int:
    return (
        CampaignRecipient.select()
        .where((CampaignRecipient.campaign == campaign_id) & (CampaignRecipient.status == "sent"))
        .count()
    )


def _engagement_day(start: datetime, end: datetime) -> dict[str, Any]:
    from worker.engagement.process import OPTED_OUT

    transitions = Counter(
        f"{from_state} -> {to_state} ({trigger})"
        for from_state, to_state, trigger in _tuples(
            EngagementTransition.select(
                EngagementTransition.from_state,
                EngagementTransition.to_state,
                EngagementTransition.trigger,
            ).where(_window(EngagementTransition.at, start, end))
        )
    )
    goodbyes = (
        OutboxMessage.select()
        .where(
            (OutboxMessage.source == "engagement") & _window(OutboxMessage.created_at, start, end)
        )
        .count()
    )
    opted_out = (
        EngagementOutcome.select()
        .join(EngagementRun)
        .where(
            _window(EngagementRun.started_at, start, end)
            & (EngagementOutcome.outcome == SKIPPED)
            & (EngagementOutcome.detail == OPTED_OUT)
        )
        .count()
    )
    return {
        "transitions": dict(sorted(transitions.items())),
        "goodbyes_sent": goodbyes,
        "skipped_opted_out": opted_out,
        "states": _states(),
    }


def _states() -> dict[str, int]:
    return _counts(
        EngagementState.select(EngagementState.state, fn.COUNT(EngagementState.id))
        .group_by(EngagementState.state)
        .order_by(EngagementState.state)
    )


def _messages_day(start: datetime, end: datetime) -> dict[str, int]:
    return _counts(
        OutboxMessage.select(OutboxMessage.source, fn.COUNT(OutboxMessage.id))
        .where(_window(OutboxMessage.created_at, start, end))
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


def _day_report(
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


def _duplicates(query: Any) -> int:
    """How many groups of `query` have more than one row."""
    return len(_tuples(query.having(fn.COUNT(1) > 1)))


def _summary(data: SampleData, days: list[dict[str, Any]]) -> dict[str, Any]:
    campaign = Campaign.get_by_id(data.campaign_id)
    batch_sizes = [
        int(size)
        for (size,) in _tuples(
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
    by_status = _counts(
        OutboxMessage.select(OutboxMessage.status, fn.COUNT(OutboxMessage.id))
        .group_by(OutboxMessage.status)
        .order_by(OutboxMessage.status)
    )
    by_source = _counts(
        OutboxMessage.select(OutboxMessage.source, fn.COUNT(OutboxMessage.id))
        .group_by(OutboxMessage.source)
        .order_by(OutboxMessage.source)
    )
    duplicate_keys = _duplicates(
        OutboxMessage.select(OutboxMessage.idempotency_key).group_by(OutboxMessage.idempotency_key)
    )
    ads_contacted_twice = _duplicates(
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
            "sent": _campaign_sent(campaign.id),
            "status": campaign.status,
            "completed_at": campaign.completed_at.isoformat() if campaign.completed_at else None,
        },
        "hunts": hunts,
        "engagement": {
            "transitions": dict(sorted(transitions.items())),
            "goodbyes_sent": sum(day["engagement"]["goodbyes_sent"] for day in days),
            "skipped_opted_out": sum(day["engagement"]["skipped_opted_out"] for day in days),
            "states": _states(),
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
    summary["problems"] = _problems(summary)
    return summary


def _problems(summary: dict[str, Any]) -> list[str]:
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


def _count_log_sends(log_path: Path) -> dict[str, int]:
    """How many times the log channel sent each key (every send is one `message.sent` line)."""
    import json

    sends: Counter[str] = Counter()
    with log_path.open(encoding="utf-8") as lines:
        for line in lines:
            if '"message.sent"' not in line:
                continue
            event = json.loads(line)
            if event.get("event") == "message.sent":
                sends[event.get("idempotency_key", "")] += 1
    return dict(sends)


def _simulate(
    runtime: Runtime,
    data: SampleData,
    start: datetime,
    days: int,
    on_day: Callable[[dict[str, Any]], None] | None,
) -> list[dict[str, Any]]:
    from producers.scheduler.loop import build_scheduler
    from storage.db import database

    scheduler = build_scheduler(runtime.settings)
    reports = []
    for number in range(1, days + 1):
        day_start = start + timedelta(days=number - 1)
        day_end = day_start + timedelta(days=1)
        replies: list[dict[str, Any]] = []
        outcomes = []
        if number == REPLY_DAY:
            outcomes = scheduler.run_until(day_start + REPLY_AT, runtime.clock)
            with database.connection_context():
                replies = simulate_replies()
            drain(runtime.broker)  # the stop's confirmation goes out
        outcomes += scheduler.run_until(day_end - DAY_END_MARGIN, runtime.clock)
        with database.connection_context():
            report = _day_report(number, data, day_start, day_end, outcomes)
        report["replies"] = replies
        reports.append(report)
        if on_day is not None:
            on_day(report)
    return reports


def run_demo(
    database: Path | None = None,
    *,
    days: int = DEMO_DAYS,
    start: datetime = DEMO_START,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_day: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the demo into a new SQLite file; returns its report (days, summary, where things are).

    `on_start` is called once the sample data is loaded, `on_day` after each simulated day,
    so a caller can print as it goes.
    """
    paths = demo_paths(database)
    began = time.monotonic()
    with embedded_runtime(paths.database, paths.log, start) as runtime:
        from storage.db import database as db
        from storage.migrate import migrate

        migrate()
        with db.connection_context():
            data = load_sample_data(start)
        setup = {
            "database": str(paths.database),
            "log_file": str(paths.log),
            "ignored_environment": list(runtime.ignored),
            "simulated_from": start.isoformat(),
            "simulated_to": (start + timedelta(days=days)).isoformat(),
            "sample_data": data.describe(),
        }
        if on_start is not None:
            on_start(setup)
        reports = _simulate(runtime, data, start, days, on_day)
        with db.connection_context():
            summary = _summary(data, reports)
    sends = _count_log_sends(paths.log)
    summary["log_channel_sends"] = sum(sends.values())
    sent_twice = sorted(key for key, count in sends.items() if count > 1)
    if sent_twice:
        summary["problems"].append(f"{len(sent_twice)} message(s) sent twice: {sent_twice[:3]}")
    return {
        **setup,
        "days": reports,
        "summary": summary,
        "wall_seconds": round(time.monotonic() - began, 2),
    }
