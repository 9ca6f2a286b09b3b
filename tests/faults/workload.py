"""Work for the fault scenarios, written straight to the tables, and the checks they share."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from storage import clock
from storage.db import database
from storage.models import (
    Account,
    CampaignRecipient,
    Contact,
    ContactList,
    EngagementOutcome,
    EngagementRun,
    EngagementState,
    OutboxMessage,
    User,
    UserProfile,
)
from storage.models.engagement import ACTIVE
from tests.faults.checks import broker_backlog
from tests.faults.receivers import MailReceiver, WebhookReceiver
from tests.processes import wait_until
from worker.campaigns.create import CampaignSpec, create_campaign

RELAY_JOB = "producers.scheduler.jobs.outbox_relay"
CAMPAIGNS_JOB = "producers.campaigns.tick"


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def schedules_file(path: Path, *entries: dict[str, Any]) -> Path:
    """An OUTREACH_SCHEDULES file; by default the relay and the campaign tick (what repairs a
    crash), with the catch-up windows of the default set."""
    if not entries:
        entries = (
            {
                "name": "outbox-relay",
                "cron": "* * * * *",
                "job": RELAY_JOB,
                "catch_up_seconds": 300,
            },
            {
                "name": "campaigns",
                "cron": "*/5 * * * *",
                "job": CAMPAIGNS_JOB,
                "catch_up_seconds": 900,
            },
        )
    path.write_text(json.dumps(list(entries)))
    return path


def make_campaign(
    contacts: int,
    daily_send_limit: int,
    start_at: datetime,
    channel: str = "webhook",
    name: str = "Spring",
) -> int:
    """A scheduled campaign to `contacts` new contacts (phones +3361..., emails contactN@...)."""
    now = clock.now()
    with database.connection_context():
        account = Account.create(name=f"{name} bakery", created_at=now)
        owner = User.create(account=account, name="Alice", created_at=now)
        contact_list = ContactList.create(name=f"{name} list", created_at=now)
        rows = [
            (contact_list.id, f"+3361{n:07d}", f"contact{n}@example.com", f"Name{n}", now)
            for n in range(1, contacts + 1)
        ]
        fields = [
            Contact.contact_list,
            Contact.phone,
            Contact.email,
            Contact.first_name,
            Contact.created_at,
        ]
        with database.atomic():
            for chunk in iter_chunks(rows, 1000):
                Contact.insert_many(chunk, fields=fields).execute()
        campaign = create_campaign(
            CampaignSpec.from_mapping(
                {
                    "owner_id": owner.id,
                    "name": name,
                    "channel": channel,
                    "contact_list": contact_list.name,
                    "template": "Hello {Name}, our spring offer is here.",
                    "daily_send_limit": daily_send_limit,
                    "start_at": start_at.isoformat(),
                }
            )
        )
        return int(campaign.id)


def make_inactive_users(count: int, inactive_days: int = 15) -> list[int]:
    """Users active `inactive_days` ago (due for the goodbye), with an email and a profile."""
    now = clock.now()
    user_ids: list[int] = []
    with database.connection_context(), database.atomic():
        account = Account.create(name="Acme", created_at=now)
        for chunk in iter_chunks(list(range(1, count + 1)), 1000):
            users = [(account.id, f"User {n}", f"user{n}@example.com", now) for n in chunk]
            ids = [
                row[0]
                for row in User.insert_many(
                    users, fields=[User.account, User.name, User.email, User.created_at]
                )
                .returning(User.id)
                .tuples()
                .execute()
            ]
            UserProfile.insert_many(
                [(user_id, "en", now) for user_id in ids],
                fields=[UserProfile.user, UserProfile.locale, UserProfile.created_at],
            ).execute()
            EngagementState.insert_many(
                [(user_id, ACTIVE, now - timedelta(days=inactive_days), now) for user_id in ids],
                fields=[
                    EngagementState.user,
                    EngagementState.state,
                    EngagementState.last_activity_at,
                    EngagementState.updated_at,
                ],
            ).execute()
            user_ids += ids
    return user_ids


# --- reading back ------------------------------------------------------------------------------


def outbox_rows(source: str | None = None) -> list[OutboxMessage]:
    with database.connection_context():
        query = OutboxMessage.select()
        if source is not None:
            query = query.where(OutboxMessage.source == source)
        return list(query.order_by(OutboxMessage.id))


def unsettled_rows() -> int:
    """Outbox rows neither sent, failed nor unknown."""
    with database.connection_context():
        return int(
            OutboxMessage.select().where(OutboxMessage.status.in_(["queued", "sending"])).count()
        )


def recipient_statuses(campaign_id: int) -> Counter[str]:
    with database.connection_context():
        query = (
            CampaignRecipient.select(CampaignRecipient.status)
            .where(CampaignRecipient.campaign == campaign_id)
            .tuples()
        )
        return Counter(status for (status,) in query)


def run_finished(run_id: int) -> bool:
    with database.connection_context():
        return EngagementRun.get_by_id(run_id).finished_at is not None


def outcomes_by_user(run_ids: list[int] | None = None) -> dict[int, list[str]]:
    """Every engagement outcome recorded, per user (over the given runs, or all)."""
    with database.connection_context():
        query = EngagementOutcome.select(EngagementOutcome.user_id, EngagementOutcome.outcome)
        if run_ids is not None:
            query = query.where(EngagementOutcome.run.in_(run_ids))
        found: dict[int, list[str]] = {}
        for row in query:
            found.setdefault(row.user_id, []).append(row.outcome)
        return found


def engagement_states() -> Counter[str]:
    with database.connection_context():
        query = EngagementState.select(EngagementState.state).tuples()
        return Counter(state for (state,) in query)


@dataclass
class Audit:
    """What the receivers and the outbox say together, for the figures and the checks."""

    sent: int
    failed: int
    unknown: dict[int, str]  # outbox id -> key
    unsettled: int  # queued or sending
    sent_not_arrived: set[str]
    arrived_not_sent: set[str]  # at the receiver, but the row is not sent nor unknown
    duplicates: int  # a person holding two copies, or two messages where one was due
    repeats_absorbed: int  # repeats dropped by a receiver that deduplicates by key
    duplicate_detail: dict[str, dict[str, int]]  # which keys and recipients, for the failure


def audit(webhook: WebhookReceiver, mailbox: MailReceiver) -> Audit:
    rows = outbox_rows()
    by_status: dict[str, set[str]] = {}
    for row in rows:
        by_status.setdefault(row.status, set()).add(row.idempotency_key)
    sent = by_status.get("sent", set())
    unknown = {row.id: row.idempotency_key for row in rows if row.status == "unknown"}
    arrived = webhook.delivered_keys() | mailbox.delivered_keys()
    return Audit(
        sent=len(sent),
        failed=len(by_status.get("failed", set())),
        unknown=unknown,
        unsettled=len(by_status.get("queued", set()) | by_status.get("sending", set())),
        sent_not_arrived=sent - arrived,
        arrived_not_sent=arrived - sent - set(unknown.values()),
        duplicates=sum(mailbox.repeated_keys().values())
        + len(mailbox.recipients_reached_twice())
        + len(webhook.recipients_reached_twice()),
        repeats_absorbed=sum(webhook.repeated_keys().values()),
        duplicate_detail={
            "emails received twice": mailbox.repeated_keys(),
            "mailboxes reached twice": mailbox.recipients_reached_twice(),
            "webhook recipients reached twice": webhook.recipients_reached_twice(),
        },
    )


def settled(client: redis.Redis, namespace: str, *extra: tuple[str, bool]) -> str:
    """For :func:`wait_for`: "" once the broker is idle, no outbox row is queued or sending,
    and every `extra` (description, done) is done; otherwise what is still missing."""
    missing = []
    backlog = broker_backlog(client, namespace)
    if backlog:
        missing.append(f"broker backlog {backlog}")
    unsettled = unsettled_rows()
    if unsettled:
        missing.append(f"{unsettled} outbox rows queued or sending")
    missing += [description for description, done in extra if not done]
    return "; ".join(missing)


def start_the_day() -> int:
    """What the scheduler fires in the morning: the campaign tick and the engagement run.
    Returns the run's id."""
    from producers.campaigns import tick
    from producers.engagement import run_daily

    with database.connection_context():
        tick(clock.now())
        return int(run_daily(clock.now())["run_id"])


def deliveries(webhook: WebhookReceiver, mailbox: MailReceiver) -> int:
    """Messages the two receivers have taken, each key counted once."""
    return len(webhook.delivered_keys()) + len(mailbox.delivered_keys())


def wait_for_deliveries(
    webhook: WebhookReceiver, mailbox: MailReceiver, count: int, timeout: float = 120
) -> None:
    """Until the receivers have taken `count` messages: the moment to break something."""
    wait_until(
        lambda: deliveries(webhook, mailbox) >= count,
        timeout=timeout,
        interval=0.02,
        what=f"{count} deliveries",
    )
