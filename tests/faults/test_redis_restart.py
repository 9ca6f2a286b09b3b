"""Scenario 2: Redis shut down in the middle of a run and started again with nothing kept.

The worker and the scheduler run against a Redis of the test's own. Mid-run it is shut down (the
scheduler tries to fire while it is away), then started again empty: every queued, delayed and
in-flight message is gone. The processes reconnect by themselves; the outbox relay and the
campaign tick (both run by the scheduler) enqueue again what the restart lost; the users whose
engagement message was lost are still due, and a second sweep the same day finishes them.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from storage.db import database
from storage.models import CampaignBatch
from storage.models.engagement import GOODBYE_SENT
from tests.conftest import T0
from tests.faults.checks import dead_letters, wait_for
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
    schedules_file,
    settled,
    start_the_day,
    wait_for_deliveries,
)
from tests.processes import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]

CONTACTS = 2_000
DAILY_LIMIT = 1_200
USERS = 1_500
# Redis goes away once the receivers have seen this many deliveries (of 2,700 due today).
RESTART_AT = 600
# How long Redis stays away.
DOWN_FOR = 3.0
THREADS = 16
# Past the relay's threshold (15 min) for every row claimed until Redis came back.
RELAY_LATER = timedelta(minutes=20)


def _fires(proc, schedule: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in proc.events("scheduler.fire") if e.get("schedule") == schedule]


def test_a_redis_restart_mid_run_loses_nothing_and_sends_nothing_twice(
    fault_db,
    private_redis,
    fault_env,
    processes,
    webhook,
    mailbox,
    use_redis_broker,
    file_clock,
    figures,
    tmp_path,
):
    namespace = "outreach-fault"
    use_redis_broker(private_redis.url, namespace)
    client = private_redis.client()
    env = fault_env(
        fault_db.url,
        private_redis.url,
        namespace,
        OUTREACH_ENGAGEMENT_CHANNEL="email",
        OUTREACH_SCHEDULES=str(schedules_file(tmp_path / "schedules.json")),
    )
    # Given a campaign of 2,000 contacts limited to 1,200 a day, and 1,500 users due a goodbye
    campaign_id = make_campaign(CONTACTS, DAILY_LIMIT, start_at=T0)
    make_inactive_users(USERS)
    # And the Procfile's worker and a scheduler on a Redis that may go away
    worker = processes.worker(env, threads=THREADS)
    scheduler = processes.scheduler(env)
    wait_for_log(scheduler, "scheduler.started")
    # And the day's campaign batch and engagement run under way
    first_run = start_the_day()
    wait_for_deliveries(webhook, mailbox, RESTART_AT)
    # When Redis shuts down, the scheduler's next fire comes while it is away...
    private_redis.stop()
    file_clock.set(T0 + timedelta(minutes=1))
    wait_for_log(scheduler, "scheduler.lock_unavailable", timeout=30)
    time.sleep(DOWN_FOR)
    # ...and it starts again with nothing kept
    private_redis.restart()
    # Then the scheduler reconnects and fires the fire it could not take
    wait_until(
        lambda: any(
            f["fire_time"].startswith("2026-03-02T09:01") for f in _fires(scheduler, "outbox-relay")
        ),
        timeout=60,
        what="the relay fire of 09:01 after Redis came back",
    )
    # And later on the clock (past the relay's 15 minutes for what was claimed while Redis was
    # away), the relay and the tick enqueue again what Redis lost
    file_clock.set(T0 + RELAY_LATER)
    wait_until(
        lambda: any(
            f["fire_time"] == (T0 + RELAY_LATER).isoformat()
            for f in _fires(scheduler, "outbox-relay")
        ),
        timeout=60,
        what="the relay fire after the restart",
    )
    wait_for(
        lambda: settled(client, namespace, ("the day's batch to finish", _batch_finished())),
        timeout=120,
        what="the relay's and the tick's work to be done",
    )
    # And an operator's second engagement sweep the same day finishes the users still due
    again = run_cli(env, "enqueue", "engagement", "--json")
    assert again.returncode == 0, again.stderr
    wait_for(
        lambda: settled(
            client,
            namespace,
            ("every user moved", engagement_states().get(GOODBYE_SENT) == USERS),
        ),
        timeout=120,
        what="the second sweep's work to be done",
    )

    second_sweep = json.loads(again.stdout)
    found = audit(webhook, mailbox)
    recipients = recipient_statuses(campaign_id)
    outcomes = outcomes_by_user()
    relay_requeued = sum(f["enqueued"]["requeued"] for f in _fires(scheduler, "outbox-relay"))
    batch_requeued = sum(f["enqueued"]["requeued"] for f in _fires(scheduler, "campaigns"))
    lost = (
        recipients["queued"]
        + (USERS - engagement_states().get(GOODBYE_SENT, 0))
        + found.unsettled
        + len(found.sent_not_arrived)
    )
    figures.record(
        Figures(
            "2 Redis restarted",
            sent=found.sent,
            duplicates=found.duplicates,
            lost=lost,
            unknown=len(found.unknown),
            failed=found.failed,
            repeats_absorbed=found.repeats_absorbed,
            note=f"relay re-enqueued {relay_requeued} rows, tick {batch_requeued} batches, "
            f"second sweep {second_sweep['enqueued']} users",
        )
    )
    worker_log = worker.text()
    scheduler_log = scheduler.text()

    # Then the processes never died: they reconnected by themselves and said so
    assert worker.alive() and scheduler.alive()
    assert "Consumer encountered a connection error" in worker_log
    assert "Restarting consumer" in worker_log
    assert '"scheduler.lock_unavailable"' in scheduler_log
    assert '"scheduler.lock_recovered"' in scheduler_log
    # And what the restart lost was enqueued again
    # (by the relay, the campaign tick, or the second sweep: which one depends on what was in
    # Redis at the moment it went away)
    assert relay_requeued + batch_requeued + second_sweep["enqueued"] > 0
    # And the campaign's daily limit held: 1,200 sent today, once each, the rest still pending
    assert recipients == {"sent": DAILY_LIMIT, "pending": CONTACTS - DAILY_LIMIT}
    with database.connection_context():
        assert [b.selected for b in CampaignBatch.select()] == [DAILY_LIMIT]
    campaign_keys = {r.idempotency_key for r in outbox_rows("campaign")}
    assert len(campaign_keys) == DAILY_LIMIT
    assert webhook.delivered_keys() == campaign_keys
    # And every user got exactly one goodbye, whichever sweep got to them
    assert engagement_states() == {GOODBYE_SENT: USERS}
    goodbyes = outbox_rows("engagement")
    assert len(goodbyes) == USERS and {r.status for r in goodbyes} == {"sent"}
    assert all("succeeded" in o for o in outcomes.values()) and len(outcomes) == USERS
    # And nothing was sent twice, nothing recorded sent is missing, nothing is left behind
    assert found.duplicates == 0, found.duplicate_detail
    assert found.sent_not_arrived == set() and found.arrived_not_sent == set()
    assert lost == 0 and found.unknown == {}
    assert dead_letters(client, namespace) == {}
    assert second_sweep["run_id"] != first_run


def _batch_finished() -> bool:
    with database.connection_context():
        return CampaignBatch.select().where(CampaignBatch.finished_at.is_null(False)).count() == 1
