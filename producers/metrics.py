"""What `/metrics` reports, computed at scrape time: one query per family, each on an index.

- ``outreach_outbox_open_messages{status,channel}``: queued, sending and unknown rows (outbox
  index status, channel);
- ``outreach_outbox_finished_today{status,channel}``: sent, failed and suppressed since 00:00
  UTC (outbox status, finished_at, channel, sender): today's sends per channel are
  ``status="sent"``;
- ``outreach_sender_finished_today{sender,status}``: the same rows (the same query) by sender;
- ``outreach_sender_paused{sender}``: 1 for each sender paused now (the sender table, small);
- ``outreach_campaigns{status}``: grouped count (campaign status, next_batch_at);
- ``outreach_campaign_recipients{campaign,status}``: running and paused campaigns' recipients
  (recipient campaign, status, contact; on PostgreSQL one index range per campaign);
- ``outreach_hunt_pacing_used{hunt}`` and ``_limit``: active hunts and today's counter (hunt
  status, auto_refresh; pacing hunt, day, channel);
- ``outreach_engagement_run_outcomes{check,outcome}``: the latest run's outcomes (outcome run,
  user_id, check_type);
- ``outreach_queue_messages{queue,state}``, ``outreach_dead_letters{queue}``: one Redis pipeline;
- ``outreach_scheduler_*{schedule}``: the scheduler's last fires (one row per schedule).

A family that cannot be computed (Redis away) is left out and counted in
``outreach_metrics_errors{family}``: the others are still reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, time, timedelta
from typing import Any, cast

import dramatiq
from peewee import JOIN, SQL, fn
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storage import clock
from storage.db import database
from worker.logging import get_logger
from worker.senders import default_sender

log = get_logger("outreach.metrics")

Family = Callable[[datetime], Iterable[Metric]]
# COUNT(*), not COUNT(id): PostgreSQL then counts from the index alone (an index-only scan).
COUNT_ROWS = fn.COUNT(SQL("*"))


def open_outbox_query() -> Any:
    """Open rows of any age by status and channel (outbox index status, channel)."""
    from storage.models.outbox import QUEUED, SENDING, UNKNOWN
    from storage.models.outbox import OutboxMessage as Outbox

    return (
        Outbox.select(Outbox.status, Outbox.channel, COUNT_ROWS)
        .where(Outbox.status.in_([QUEUED, SENDING, UNKNOWN]))
        .group_by(Outbox.status, Outbox.channel)
    )


def finished_outbox_query(now: datetime) -> Any:
    """Rows finished since 00:00 UTC by status, channel and sender (outbox index status,
    finished_at, channel, sender)."""
    from storage.models.outbox import FAILED, SENT, SUPPRESSED
    from storage.models.outbox import OutboxMessage as Outbox

    midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    return (
        Outbox.select(Outbox.status, Outbox.channel, Outbox.sender, COUNT_ROWS)
        .where(Outbox.status.in_([SENT, FAILED, SUPPRESSED]) & (Outbox.finished_at >= midnight))
        .group_by(Outbox.status, Outbox.channel, Outbox.sender)
    )


def outbox_families(now: datetime) -> Iterator[Metric]:
    """Open rows of any age; finished rows of today only, so the queries stay the size of the
    work in flight and of one day, not of the outbox's whole history."""
    open_rows = GaugeMetricFamily(
        "outreach_outbox_open_messages",
        "Outbox rows waiting to be sent, being sent, or unknown (an operator decides).",
        labels=["status", "channel"],
    )
    for status, channel, count in open_outbox_query().tuples().iterator():
        open_rows.add_metric([str(status), str(channel)], int(count))
    yield open_rows
    finished = GaugeMetricFamily(
        "outreach_outbox_finished_today",
        "Outbox rows finished since 00:00 UTC: sent, failed or suppressed, by channel.",
        labels=["status", "channel"],
    )
    per_sender = GaugeMetricFamily(
        "outreach_sender_finished_today",
        "Outbox rows finished since 00:00 UTC by the sender they went out from, by status.",
        labels=["sender", "status"],
    )
    by_channel: dict[tuple[str, str], int] = {}
    by_sender: dict[tuple[str, str], int] = {}
    for status, channel, sender, count in finished_outbox_query(now).tuples().iterator():
        by_channel[(str(status), str(channel))] = by_channel.get((str(status), str(channel)), 0)
        by_channel[(str(status), str(channel))] += int(count)
        # A row of no sender (queued before senders existed) went out from its channel's default.
        name = str(sender) if sender is not None else default_sender(str(channel))
        by_sender[(name, str(status))] = by_sender.get((name, str(status)), 0) + int(count)
    for labels, count in by_channel.items():
        finished.add_metric(list(labels), count)
    for labels, count in by_sender.items():
        per_sender.add_metric(list(labels), count)
    yield finished
    yield per_sender


def sender_families(now: datetime) -> Iterator[Metric]:
    """Every sender's pause: 1 while a provider's signal or an operator holds it."""
    from storage.models.senders import Sender

    paused = GaugeMetricFamily(
        "outreach_sender_paused",
        "1 while the sender is paused (WAHA 463, HTTP 429, `outreach sender pause`), else 0.",
        labels=["sender"],
    )
    for name, until in Sender.select(Sender.name, Sender.paused_until).tuples().iterator():
        paused.add_metric([str(name)], 1 if until is not None and until > now else 0)
    yield paused


def campaign_families(now: datetime) -> Iterator[Metric]:
    from storage.models.campaigns import Campaign

    family = GaugeMetricFamily("outreach_campaigns", "Campaigns by status.", labels=["status"])
    query = Campaign.select(Campaign.status, COUNT_ROWS).group_by(Campaign.status)
    for status, count in query.tuples().iterator():
        family.add_metric([str(status)], int(count))
    yield family


# PostgreSQL: each running or paused campaign's recipients counted on their own, from the
# index (campaign_id, status, contact_id), rather than a hash join over every recipient (a
# quarter of the time with 1,000 campaigns and 333,000 recipients). SQLite has no LATERAL.
CAMPAIGN_PROGRESS_SQL = (
    "SELECT c.id, r.status, r.n FROM campaign AS c CROSS JOIN LATERAL "
    "(SELECT status, COUNT(*) AS n FROM campaign_recipient WHERE campaign_id = c.id "
    "GROUP BY status) AS r WHERE c.status IN (%s, %s)"
)


def campaign_progress_rows() -> list[tuple[Any, ...]]:
    """(campaign id, recipient status, count) of every running or paused campaign."""
    from storage.db import is_postgres
    from storage.models.campaigns import PAUSED, RUNNING, Campaign, CampaignRecipient

    if is_postgres():
        return list(database.execute_sql(CAMPAIGN_PROGRESS_SQL, (RUNNING, PAUSED)).fetchall())
    query = (
        CampaignRecipient.select(CampaignRecipient.campaign, CampaignRecipient.status, COUNT_ROWS)
        .join(Campaign, on=(CampaignRecipient.campaign == Campaign.id))
        .where(Campaign.status.in_([RUNNING, PAUSED]))
        .group_by(CampaignRecipient.campaign, CampaignRecipient.status)
    )
    return cast(list[tuple[Any, ...]], list(query.tuples()))


def campaign_progress_families(now: datetime) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "outreach_campaign_recipients",
        "Recipients of running and paused campaigns, by status (progress).",
        labels=["campaign", "status"],
    )
    for campaign_id, status, count in campaign_progress_rows():
        family.add_metric([str(campaign_id), str(status)], int(count))
    yield family


def hunt_pacing_families(now: datetime) -> Iterator[Metric]:
    from storage.models.accounts import Account
    from storage.models.hunts import ACTIVE, ALL_CHANNELS, Hunt, HuntPacing
    from worker.hunts.pacing import local_day

    used = GaugeMetricFamily(
        "outreach_hunt_pacing_used",
        "Contacts made today (the account's local day) by each active hunt.",
        labels=["hunt"],
    )
    limit = GaugeMetricFamily(
        "outreach_hunt_pacing_limit",
        "Daily pacing limit of each active hunt that has one.",
        labels=["hunt"],
    )
    # Every zone's "today" is within a day of UTC's.
    days = [now.date() + timedelta(days=offset) for offset in (-1, 0, 1)]
    query = (
        Hunt.select(
            Hunt.id, Hunt.daily_pacing_limit, Account.timezone, HuntPacing.day, HuntPacing.count
        )
        .join(Account, on=(Hunt.account == Account.id))
        .switch(Hunt)
        .join(
            HuntPacing,
            JOIN.LEFT_OUTER,
            on=(
                (HuntPacing.hunt == Hunt.id)
                & (HuntPacing.channel == ALL_CHANNELS)
                & HuntPacing.day.in_(days)
            ),
        )
        .where(Hunt.status == ACTIVE)
        .order_by(Hunt.id)
    )
    counts: dict[int, int] = {}
    limits: dict[int, int | None] = {}
    for hunt_id, pacing_limit, zone, day, count in query.tuples().iterator():
        counts.setdefault(hunt_id, 0)
        limits[hunt_id] = pacing_limit
        if day is not None and day == local_day(zone, now):
            counts[hunt_id] = int(count)
    for hunt_id, count in counts.items():
        used.add_metric([str(hunt_id)], count)
        if limits[hunt_id] is not None:
            limit.add_metric([str(hunt_id)], int(cast(int, limits[hunt_id])))
    yield used
    yield limit


def engagement_families(now: datetime) -> Iterator[Metric]:
    from storage.models.engagement import EngagementOutcome, EngagementRun

    family = GaugeMetricFamily(
        "outreach_engagement_run_outcomes",
        "Outcomes of the latest engagement run, by check and outcome.",
        labels=["check", "outcome"],
    )
    latest = EngagementRun.select(fn.MAX(EngagementRun.id))
    query = (
        EngagementOutcome.select(
            EngagementOutcome.check_type, EngagementOutcome.outcome, COUNT_ROWS
        )
        .where(EngagementOutcome.run == latest)
        .group_by(EngagementOutcome.check_type, EngagementOutcome.outcome)
    )
    for check, outcome, count in query.tuples().iterator():
        family.add_metric([str(check), str(outcome)], int(count))
    yield family


def queue_families(now: datetime) -> Iterator[Metric]:
    """Redis only: the in-process broker of embedded mode keeps no queues worth watching."""
    from producers.status import queue_depths

    depths = queue_depths(dramatiq.get_broker())
    messages = GaugeMetricFamily(
        "outreach_queue_messages",
        "Messages on each Dramatiq queue: ready, in flight (fetched, not acked), delayed.",
        labels=["queue", "state"],
    )
    dead = GaugeMetricFamily(
        "outreach_dead_letters",
        "Messages in each queue's dead-letter set (Dramatiq keeps them 7 days).",
        labels=["queue"],
    )
    for depth in depths:
        for state in ("ready", "in_flight", "delayed"):
            messages.add_metric([depth["queue"], state], depth[state])
        dead.add_metric([depth["queue"]], depth["dead"])
    yield messages
    yield dead


def scheduler_families(now: datetime) -> Iterator[Metric]:
    from producers.scheduler.firing import latest_fire
    from producers.scheduler.records import last_fires
    from producers.scheduler.schedules import load_schedules
    from storage.settings import get_settings

    lag = GaugeMetricFamily(
        "outreach_scheduler_fire_lag_seconds",
        "How long the schedule's latest due fire has waited unmade (0 once it is made).",
        labels=["schedule"],
    )
    delay = GaugeMetricFamily(
        "outreach_scheduler_last_fire_delay_seconds",
        "How long after its time the schedule's last recorded fire started.",
        labels=["schedule"],
    )
    last = GaugeMetricFamily(
        "outreach_scheduler_last_fire_timestamp_seconds",
        "Time of the schedule's last recorded fire (Unix seconds).",
        labels=["schedule"],
    )
    failed = GaugeMetricFamily(
        "outreach_scheduler_last_fire_failed",
        "1 when the schedule's last recorded fire ended with an error.",
        labels=["schedule"],
    )
    kept = last_fires()
    for schedule in load_schedules(get_settings()):
        row = kept.get(schedule.name)
        due = latest_fire(schedule, now)
        made = due is None or (row is not None and row.fire_time >= due.at)
        waited = 0.0 if made or due is None else (now - due.at).total_seconds()
        lag.add_metric([schedule.name], waited)
        if row is not None:
            delay.add_metric(
                [schedule.name], max(0.0, (row.started_at - row.fire_time).total_seconds())
            )
            last.add_metric([schedule.name], row.fire_time.timestamp())
            failed.add_metric([schedule.name], 1 if row.error else 0)
    yield lag
    yield delay
    yield last
    yield failed


FAMILIES: dict[str, Family] = {
    "outbox": outbox_families,
    "senders": sender_families,
    "campaigns": campaign_families,
    "campaign_progress": campaign_progress_families,
    "hunt_pacing": hunt_pacing_families,
    "engagement": engagement_families,
    "queues": queue_families,
    "scheduler": scheduler_families,
}


class OutreachCollector(Collector):
    """Every family, read at scrape time (nothing is counted in the process between scrapes,
    so any number of web processes report the same figures)."""

    def collect(self) -> Iterator[Metric]:
        now = clock.now()
        errors = GaugeMetricFamily(
            "outreach_metrics_errors",
            "1 for each family that could not be computed in this scrape.",
            labels=["family"],
        )
        with database.connection_context():
            for name, family in FAMILIES.items():
                try:
                    metrics = list(family(now))
                except Exception as exc:
                    log.error("metrics.family_failed", family=name, error=str(exc))
                    errors.add_metric([name], 1)
                    continue
                yield from metrics
        yield errors

    def describe(self) -> Iterable[Any]:
        # Nothing to check at registration: the families are only known at scrape time.
        return []
