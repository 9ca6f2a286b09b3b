"""`outreach status`: queue depths and dead letters, outbox, campaigns, last fires."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from producers.scheduler.firing import Fire
from producers.scheduler.records import record_fire
from producers.scheduler.schedules import Schedule
from storage.models import (
    Account,
    Campaign,
    CampaignRecipient,
    Contact,
    ContactList,
    MessageTemplate,
    OutboxMessage,
    User,
)
from tests.cli.conftest import assert_refused, outreach


def outbox_row(key: str, status: str, now: datetime) -> None:
    OutboxMessage.create(
        idempotency_key=key, channel="log", recipient="x", body="b", status=status, created_at=now
    )


def running_campaign(now: datetime, statuses: list[str]) -> Campaign:
    """A running campaign whose recipients are in the given statuses (rows written directly)."""
    account = Account.create(name="Bakery", created_at=now)
    owner = User.create(account=account, name="Alice", created_at=now)
    contacts = ContactList.create(name="customers", created_at=now)
    template = MessageTemplate.create(owner=owner, name="t", body="Hi {Name}", created_at=now)
    campaign = Campaign.create(
        owner=owner,
        name="Spring sale",
        channel="log",
        template=template,
        contact_list=contacts,
        status="running",
        created_at=now,
        updated_at=now,
        current_batch_number=1,
        next_batch_at=now,
    )
    for n, status in enumerate(statuses):
        contact = Contact.create(contact_list=contacts, phone=f"+3361000000{n}", created_at=now)
        CampaignRecipient.create(campaign=campaign, contact=contact, status=status)
    return campaign


def test_status_reports_queues_dead_letters_outbox_campaigns_and_schedules(
    db, clock, redis_broker, env
):
    # Given two deliveries waiting in Redis, one dead letter, outbox rows and a running campaign
    from worker.actors.delivery import deliver_outbox_message

    deliver_outbox_message.send(1)
    deliver_outbox_message.send(2)
    dead_key = f"{redis_broker.namespace}:delivery.XQ"
    redis_broker.client.zadd(dead_key, {"dead-1": 1})
    redis_broker.client.hset(dead_key + ".msgs", "dead-1", b"{}")
    now = clock.now()
    outbox_row("a", "sent", now)
    outbox_row("b", "sent", now)
    outbox_row("c", "unknown", now)
    campaign = running_campaign(now, ["sent", "sent", "pending"])
    # And the hunts sweep fired this morning
    hunts = Schedule("hunts", "0 8 * * *", "producers.hunts.sweep", "Europe/Paris")
    fire = Fire(datetime(2026, 3, 2, 7, tzinfo=UTC), "hunts", datetime(2026, 3, 2, 8))
    record_fire(
        hunts,
        fire,
        started_at=fire.at,
        finished_at=fire.at,
        result={"enqueued": 3},
        error=None,
        fired_by="host:1",
    )
    # When an operator asks for the status
    result = outreach("status", "--json")
    # Then everything is in one report
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["broker"] == "redis"
    delivery = next(q for q in report["queues"] if q["queue"] == "delivery")
    assert (delivery["ready"], delivery["dead"]) == (2, 1)
    assert report["outbox"] == {
        "queued": 0,
        "sending": 0,
        "sent": 2,
        "failed": 0,
        "unknown": 1,
        "suppressed": 0,
    }
    [shown] = report["campaigns"]
    assert (shown["id"], shown["status"], shown["recipients"]) == (
        campaign.id,
        "running",
        {"sent": 2, "pending": 1},
    )
    schedules = {s["name"]: s for s in report["schedules"]}
    assert set(schedules) == {"engagement", "hunts", "campaigns", "outbox-relay"}
    assert schedules["hunts"]["last_fire_time"] == "2026-03-02T07:00:00+00:00"
    assert schedules["hunts"]["last_result"] == {"enqueued": 3}
    assert schedules["engagement"]["last_fire_time"] is None
    # And the human version shows the same tables
    table = outreach("status")
    assert table.exit_code == 0, table.output
    assert "Spring sale" in table.stdout and "delivery" in table.stdout


def test_status_in_embedded_mode_has_no_queues(db, clock):
    result = outreach("status", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["broker"], report["queues"]) == ("embedded", [])


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("[{", "not JSON"), ('[{"name": "x"}]', "needs name, cron and job")],
)
def test_a_malformed_schedules_file_is_one_line(db, env, tmp_path, content, fragment):
    path = tmp_path / "schedules.json"
    path.write_text(content)
    env.setenv("OUTREACH_SCHEDULES", str(path))
    assert_refused(outreach("status"), "OUTREACH_SCHEDULES", fragment)
    assert_refused(outreach("scheduler"), "OUTREACH_SCHEDULES", fragment)


def test_a_bad_time_zone_setting_is_one_line(db, env):
    env.setenv("OUTREACH_HUNTS_TIMEZONE", "Europe/Atlantis")
    assert_refused(outreach("status", "--json"), "Europe/Atlantis")
