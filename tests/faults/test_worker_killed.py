"""Scenario 1: workers killed with SIGKILL, again and again, in the middle of real work.

A campaign of 5,000 contacts (limit 5,000, on the `webhook` channel, whose receiver keeps the key)
and a daily engagement run of 5,000 inactive users (goodbyes by `email`, which does not
deduplicate) run on the Procfile's worker; the worker's whole process group is SIGKILLed three
times while messages are in flight, and a fresh worker finishes. The scheduler's outbox relay
settles what the kills left behind once its thresholds pass on the (file) clock.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from storage.db import database
from storage.models import Campaign, CampaignBatch
from storage.models.engagement import GOODBYE_SENT
from tests.conftest import T0, redis_client
from tests.faults.checks import broker_idle, dead_letters
from tests.faults.figures import Figures
from tests.faults.procfile import run_cli, wait_for_log
from tests.faults.workload import (
    audit,
    engagement_states,
    make_campaign,
    make_inactive_users,
    outbox_rows,
    outcomes_by_user,
    recipient_statuses,
    run_finished,
    schedules_file,
    start_the_day,
    unsettled_rows,
    wait_for_deliveries,
)
from tests.processes import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]

CONTACTS = 5_000
USERS = 5_000
# SIGKILL the worker when the receivers have seen this many deliveries (of 10,000).
KILL_AT = (300, 2_500, 5_500)
# Threads per worker process (two processes, as the Procfile): the work waits on the database
# and the receivers far more than on the CPU.
THREADS = 16
# Each SMTP answer waits this long, so that a kill finds sends in the middle of the conversation.
SMTP_DELAY = 0.02
# Past the relay's and the stale-send thresholds (15 min and 2 min by default).
RELAY_LATER = timedelta(minutes=16)


def test_workers_killed_mid_run_leave_one_outcome_per_recipient_and_no_double_send(
    fault_db,
    shared_redis,
    fault_env,
    processes,
    webhook,
    mailbox,
    use_redis_broker,
    file_clock,
    figures,
    tmp_path,
):
    redis_url, namespace = shared_redis
    use_redis_broker(redis_url, namespace)
    client = redis_client()
    env = fault_env(
        fault_db.url,
        redis_url,
        namespace,
        OUTREACH_ENGAGEMENT_CHANNEL="email",
        OUTREACH_SCHEDULES=str(schedules_file(tmp_path / "schedules.json")),
    )
    # The workers log warnings and errors only: a JSON line per send costs more CPU than the send.
    worker_env = {**env, "OUTREACH_LOG_LEVEL": "WARNING"}
    mailbox.misbehave(delay=SMTP_DELAY)
    # Given a campaign of 5,000 contacts with a limit of 5,000, and 5,000 users inactive 15 days
    campaign_id = make_campaign(CONTACTS, CONTACTS, start_at=T0)
    make_inactive_users(USERS)
    # And the Procfile's worker, and a scheduler running the relay and the campaign tick
    worker = processes.worker(worker_env, threads=THREADS)
    scheduler = processes.scheduler(env)
    # When the campaign's batch and the engagement run are enqueued
    run_id = start_the_day()
    # And the worker is SIGKILLed three times while messages are in flight, a new one started
    # at once each time
    for threshold in KILL_AT:
        wait_for_deliveries(webhook, mailbox, threshold)
        processes.kill(worker)
        worker = processes.worker(worker_env, threads=THREADS)
    # And the fresh worker works until the broker holds nothing more (the killed workers'
    # messages come back once their heartbeat is older than the timeout)
    wait_until(
        lambda: broker_idle(client, namespace) and run_finished(run_id),
        timeout=180,
        interval=0.5,
        what="the broker to drain and the engagement run to finish",
    )
    left_by_kills = unsettled_rows()
    # And, later on the clock, the scheduler's relay settles what the kills left behind
    fires = len(scheduler.events("scheduler.fire"))
    file_clock.set(T0 + RELAY_LATER)
    wait_for_log(scheduler, "scheduler.fire", count=fires + 1, timeout=60)
    wait_until(
        lambda: broker_idle(client, namespace) and unsettled_rows() == 0,
        timeout=120,
        interval=0.5,
        what="every outbox row to be settled after the relay",
    )
    settled = audit(webhook, mailbox)
    mail_when_settled = mailbox.delivered_keys()
    # And the relay runs twice more, later still
    for minutes in (20, 40):
        fires = len(scheduler.events("scheduler.fire"))
        file_clock.set(T0 + timedelta(minutes=minutes))
        wait_for_log(scheduler, "scheduler.fire", count=fires + 1, timeout=60)
    wait_until(lambda: broker_idle(client, namespace), timeout=60, what="the broker to drain")

    found = audit(webhook, mailbox)
    recipients = recipient_statuses(campaign_id)
    outcomes = outcomes_by_user([run_id])
    campaign_rows = outbox_rows("campaign")
    goodbye_rows = outbox_rows("engagement")
    with database.connection_context():
        campaign = Campaign.get_by_id(campaign_id)
        selected = [b.selected for b in CampaignBatch.select()]
    review = run_cli(env, "outbox", "review", "--json", "--limit", "10000")
    lost = (
        recipients["pending"]
        + recipients["queued"]
        + (USERS - len(outcomes))
        + found.unsettled
        + len(found.sent_not_arrived)
    )
    figures.record(
        Figures(
            "1 worker SIGKILLed x3",
            sent=found.sent,
            duplicates=found.duplicates,
            lost=lost,
            unknown=len(found.unknown),
            failed=found.failed,
            repeats_absorbed=found.repeats_absorbed,
            note=f"{processes.kills} kills; {left_by_kills} rows left for the relay",
        )
    )

    # Then every contact has exactly one outcome: sent once, within the limit of 5,000
    assert len({r.idempotency_key for r in campaign_rows}) == len(campaign_rows) == CONTACTS
    assert recipients == {"sent": CONTACTS}
    assert selected == [CONTACTS]
    assert campaign.status == "completed"
    assert {r.status for r in campaign_rows} == {"sent"}
    assert webhook.delivered_keys() == {r.idempotency_key for r in campaign_rows}
    # And every user has exactly one outcome in the run, one goodbye claimed, and moved once
    assert len(outcomes) == USERS
    assert {tuple(o) for o in outcomes.values()} == {("succeeded",)}
    assert engagement_states() == {GOODBYE_SENT: USERS}
    assert len(goodbye_rows) == USERS
    assert {r.status for r in goodbye_rows} <= {"sent", "unknown"}
    # And nobody received two messages; every message recorded sent arrived
    assert found.duplicates == 0, found.duplicate_detail
    assert found.sent_not_arrived == set() and found.arrived_not_sent == set()
    # And what cannot be known (killed mid-send on email) is `unknown`, listed for review...
    assert set(found.unknown.values()) <= {r.idempotency_key for r in goodbye_rows}
    assert review.returncode == 0, review.stderr
    assert {row["id"] for row in json.loads(review.stdout)} == set(found.unknown)
    # ...and never sent again by itself, however often the relay runs
    assert found.unknown == settled.unknown
    unknown_keys = set(found.unknown.values())
    assert mailbox.delivered_keys() & unknown_keys == mail_when_settled & unknown_keys
    assert mailbox.delivered_keys() <= {
        r.idempotency_key for r in goodbye_rows if r.status == "sent"
    } | set(found.unknown.values())
    # And no unit of work is left neither done nor visibly due; nothing was dead-lettered
    assert lost == 0
    assert dead_letters(client, namespace) == {}
