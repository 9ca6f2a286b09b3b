"""`/metrics`: parsed with prometheus-client's own parser, each figure matches the database."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from producers.scheduler.firing import Fire
from producers.scheduler.records import record_fire
from producers.scheduler.schedules import default_schedules
from storage.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    EngagementOutcome,
    EngagementRun,
    HuntPacing,
    OutboxMessage,
    Sender,
)
from storage.settings import Settings
from worker.senders import default_sender

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(client) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def outbox_row(
    n: int, status: str, channel: str, finished_at: datetime | None, sender: str | None = None
) -> dict[str, Any]:
    return {
        "sender": sender,
        "idempotency_key": f"metrics-{n}",
        "channel": channel,
        "recipient": f"+3360000{n:04d}",
        "body": "hello",
        "status": status,
        "created_at": finished_at or datetime(2026, 3, 2, 8),
        "finished_at": finished_at,
    }


def given_some_of_everything(clock, owner, other_owner, make_campaign, make_hunt) -> None:
    today, yesterday = clock.now() - timedelta(hours=1), clock.now() - timedelta(days=1)
    rows = [
        *[("sent", "whatsapp", today, "whatsapp:shop")] * 2,
        ("sent", "whatsapp", today, "whatsapp:default"),
        ("failed", "whatsapp", today, "whatsapp:shop"),
        ("sent", "whatsapp", yesterday, "whatsapp:shop"),
        # Two rows of no sender (queued before senders existed): the channel's default's
        *[("sent", "email", today, None)] * 2,
        ("queued", "email", None, None),
        ("failed", "log", today, "log:default"),
        ("unknown", "whatsapp", yesterday, "whatsapp:shop"),
        ("suppressed", "email", today, "email:news@example.com"),
        ("failed", "email", yesterday, "email:news@example.com"),
    ]
    OutboxMessage.insert_many([outbox_row(n, *row) for n, row in enumerate(rows)]).execute()
    # One sender paused for an hour, one whose pause ended, one never paused
    for name, paused_until in [
        ("whatsapp:shop", clock.now() + timedelta(hours=1)),
        ("whatsapp:default", clock.now() - timedelta(minutes=1)),
        ("email:news@example.com", None),
    ]:
        Sender.create(
            name=name,
            channel=name.partition(":")[0],
            paused_until=paused_until,
            created_at=clock.now(),
        )
    # A running campaign part way, a paused one, and a draft (not in progress)
    running, paused = make_campaign(owner, contacts=3), make_campaign(other_owner, contacts=2)
    make_campaign(owner, contacts=1)
    for campaign, status, outcomes in [
        (running, "running", ["sent", "sent", "pending"]),
        (paused, "paused", ["failed", "queued"]),
    ]:
        Campaign.update(status=status).where(Campaign.id == campaign.id).execute()
        contacts = Contact.select().where(Contact.contact_list == campaign.contact_list_id)
        CampaignRecipient.insert_many(
            [
                {"campaign": campaign.id, "contact": c.id, "status": s}
                for c, s in zip(contacts.order_by(Contact.id), outcomes, strict=True)
            ]
        ).execute()
    # An active hunt with 2 contacts today (Paris) and 3 yesterday; a paused one
    hunt = make_hunt(owner, daily_pacing_limit=4)
    make_hunt(owner, status="paused")
    HuntPacing.insert_many(
        [
            {"hunt": hunt.id, "day": date(2026, 3, 2), "channel": "*", "count": 2},
            {"hunt": hunt.id, "day": date(2026, 3, 2), "channel": "whatsapp", "count": 2},
            {"hunt": hunt.id, "day": date(2026, 3, 1), "channel": "*", "count": 3},
        ]
    ).execute()
    # Two engagement runs: only the latest one's outcomes are reported
    old = EngagementRun.create(fire_time=yesterday, started_at=yesterday)
    latest = EngagementRun.create(fire_time=today, started_at=today)
    for run, user_id, outcome in [
        (old, 1, "failed"),
        (latest, 1, "succeeded"),
        (latest, 2, "succeeded"),
        (latest, 3, "failed"),
    ]:
        EngagementOutcome.create(
            run=run, user_id=user_id, check_type="inactivity", outcome=outcome, recorded_at=today
        )
    # The campaign tick fired at 09:00, 3 s late; the hunts' 08:00 Paris fire never came
    campaigns = next(s for s in default_schedules(Settings()) if s.name == "campaigns")
    at = clock.now()
    record_fire(
        campaigns,
        Fire(at, "campaigns", at.replace(tzinfo=None)),
        started_at=at + timedelta(seconds=3),
        finished_at=at + timedelta(seconds=4),
        result={"enqueued": 0},
        error=None,
        fired_by="scheduler-a",
    )


def counted(rows: list[tuple[str, ...]]) -> dict[tuple[tuple[str, str], ...], float]:
    """Rows of label values, counted the slow way: one sample per distinct row."""
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for row in rows:
        key = tuple(sorted(row))  # type: ignore[arg-type]
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_the_figures_match_the_database(
    client, clock, owner, other_owner, make_campaign, make_hunt
):
    given_some_of_everything(clock, owner, other_owner, make_campaign, make_hunt)
    samples = scrape(client)
    midnight = clock.now().replace(hour=0)
    outbox = list(OutboxMessage.select())
    # Outbox rows by status and channel, and today's sends by channel
    # Open rows of any age by status and channel; rows finished today, and so today's sends
    assert samples["outreach_outbox_open_messages"] == counted(
        [
            (("channel", m.channel), ("status", m.status))
            for m in outbox
            if m.status in ("queued", "sending", "unknown")
        ]
    )
    finished = samples["outreach_outbox_finished_today"]
    assert finished == counted(
        [
            (("channel", m.channel), ("status", m.status))
            for m in outbox
            if m.status in ("sent", "failed", "suppressed") and m.finished_at >= midnight
        ]
    )
    sent_today = {k: v for k, v in finished.items() if ("status", "sent") in k}
    assert sent_today == {
        (("channel", "email"), ("status", "sent")): 2,
        (("channel", "whatsapp"), ("status", "sent")): 3,
    }
    # Today's finished rows by the sender they went out from (a row of no sender: its
    # channel's default), and which senders are paused now
    assert samples["outreach_sender_finished_today"] == counted(
        [
            (("sender", m.sender or default_sender(m.channel)), ("status", m.status))
            for m in outbox
            if m.status in ("sent", "failed", "suppressed") and m.finished_at >= midnight
        ]
    )
    assert (
        samples["outreach_sender_finished_today"][(("sender", "whatsapp:shop"), ("status", "sent"))]
        == 2
    )
    assert (
        samples["outreach_sender_finished_today"][
            (("sender", default_sender("email")), ("status", "sent"))
        ]
        == 2
    )
    assert samples["outreach_sender_paused"] == {
        (("sender", s.name),): float(s.paused_until is not None and s.paused_until > clock.now())
        for s in Sender.select()
    }
    assert sum(samples["outreach_sender_paused"].values()) == 1
    # Campaigns by status, and the progress of those running or paused
    assert samples["outreach_campaigns"] == counted(
        [(("status", c.status),) for c in Campaign.select()]
    )
    in_progress = [
        (("campaign", str(r.campaign_id)), ("status", r.status))
        for r in CampaignRecipient.select().join(Campaign)
        if r.campaign.status in ("running", "paused")
    ]
    assert samples["outreach_campaign_recipients"] == counted(in_progress)
    assert sum(samples["outreach_campaign_recipients"].values()) == 5
    # The active hunt's pacing today against its limit; the paused hunt is not reported
    hunt_id = HuntPacing.get().hunt_id
    assert samples["outreach_hunt_pacing_used"] == {(("hunt", str(hunt_id)),): 2}
    assert samples["outreach_hunt_pacing_limit"] == {(("hunt", str(hunt_id)),): 4}
    # The latest engagement run's outcomes
    latest = EngagementRun.select().order_by(EngagementRun.id.desc()).get()
    assert samples["outreach_engagement_run_outcomes"] == counted(
        [
            (("check", o.check_type), ("outcome", o.outcome))
            for o in EngagementOutcome.select().where(EngagementOutcome.run == latest.id)
        ]
    )
    # Scheduler: the tick's fire is made (3 s late), the hunts' 08:00 Paris fire has waited 2 h
    lag = samples["outreach_scheduler_fire_lag_seconds"]
    assert lag[(("schedule", "campaigns"),)] == 0
    assert lag[(("schedule", "hunts"),)] == 2 * 3600
    delay = samples["outreach_scheduler_last_fire_delay_seconds"]
    assert delay == {(("schedule", "campaigns"),): 3}
    assert samples["outreach_scheduler_last_fire_failed"] == {(("schedule", "campaigns"),): 0}
    assert samples["outreach_scheduler_last_fire_timestamp_seconds"] == {
        (("schedule", "campaigns"),): clock.now().timestamp()
    }
    # Embedded mode: no Redis queues, and every family computed
    assert samples.get("outreach_dead_letters", {}) == {}
    assert samples.get("outreach_metrics_errors", {}) == {}


def test_an_empty_database_scrapes_cleanly(client, clock):
    samples = scrape(client)
    assert samples.get("outreach_outbox_open_messages", {}) == {}
    assert samples.get("outreach_metrics_errors", {}) == {}


def test_queues_and_dead_letters_come_from_redis(client, clock, fakeredis_broker):
    from worker.actors.hunts import process_hunt

    # Given two hunt messages waiting and one dead-lettered
    fakeredis_broker.declare_queue("hunt")
    process_hunt.send(1)
    process_hunt.send(2)
    ns = fakeredis_broker.namespace
    fakeredis_broker.client.zadd(f"{ns}:hunt.XQ", {"dead-1": 1})
    fakeredis_broker.client.hset(f"{ns}:hunt.XQ.msgs", "dead-1", b"{}")
    samples = scrape(client)
    assert samples["outreach_queue_messages"][(("queue", "hunt"), ("state", "ready"))] == 2
    dead = samples["outreach_dead_letters"]
    assert (dead[(("queue", "hunt"),)], sum(dead.values())) == (1, 1)


def test_a_family_that_fails_is_reported_and_the_others_still_are(
    client, clock, fakeredis_broker, monkeypatch
):
    # Given Redis cannot be reached
    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(fakeredis_broker.client, "pipeline", unreachable)
    monkeypatch.setattr(fakeredis_broker.client, "scan_iter", unreachable)
    samples = scrape(client)
    assert samples["outreach_metrics_errors"] == {(("family", "queues"),): 1}
    assert "outreach_scheduler_fire_lag_seconds" in samples
