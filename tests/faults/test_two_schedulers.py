"""Scenario 5: two schedulers by mistake for a simulated day, and sweeps enqueued twice by hand.

Two `outreach scheduler` processes run the default schedules (engagement at 06:00 UTC, hunts at
08:00 Paris, the campaign tick every 5 minutes, the relay every minute) on one file clock that
the test moves through a day and a bit. An operator also starts the engagement sweep twice at
06:00 and a campaign's batch twice at 05:30, at the same moment as the schedulers' own fires.
Each fire runs once, by one scheduler or the other, and each message is sent once.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from datetime import datetime, timedelta

import pytest

from storage.db import database
from storage.models import CampaignBatch, EngagementRun
from storage.models.engagement import GOODBYE_SENT
from tests.conftest import T0, redis_client
from tests.faults.checks import dead_letters, wait_for
from tests.faults.figures import Figures
from tests.faults.procfile import Proc, wait_for_log
from tests.faults.workload import (
    audit,
    engagement_states,
    make_campaign,
    make_inactive_users,
    outbox_rows,
    outcomes_by_user,
    recipient_statuses,
    settled,
)
from tests.processes import BIN, ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]

CONTACTS = 600
DAILY_LIMIT = 300
USERS = 300
DAY = T0.replace(hour=0)
START = DAY.replace(hour=5)
CAMPAIGN_START = DAY.replace(hour=5, minute=30)
# Where the clock stops: every fire time of a daily schedule, and the campaign's batch times.
HOURS = [(5, 30), (6, 0), (7, 0), (9, 0), (12, 0), (15, 0), (18, 0), (21, 0), (24, 0), (27, 0)]
STEPS = [DAY + timedelta(hours=h, minutes=m) for h, m in [*HOURS, (29, 30), (30, 0)]]
ENGAGEMENT_FIRES = {DAY.replace(hour=6), DAY.replace(hour=6) + timedelta(days=1)}
HUNTS_FIRE = DAY.replace(hour=7)  # 08:00 in Paris (UTC+1 in March)


def _expected_at(moment: datetime) -> set[tuple[str, str]]:
    expected = {("outbox-relay", moment.isoformat()), ("campaigns", moment.isoformat())}
    if moment in ENGAGEMENT_FIRES:
        expected.add(("engagement", moment.isoformat()))
    if moment == HUNTS_FIRE:
        expected.add(("hunts", moment.isoformat()))
    return expected


def _fires(schedulers: list[Proc]) -> Counter[tuple[str, str]]:
    return Counter(
        (event["schedule"], event["fire_time"])
        for proc in schedulers
        for event in proc.events("scheduler.fire")
    )


def _by_hand(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "outreach"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_schedulers_and_double_manual_sweeps_fire_once_and_send_once(
    fault_db,
    shared_redis,
    fault_env,
    processes,
    webhook,
    mailbox,
    use_redis_broker,
    file_clock,
    figures,
):
    redis_url, namespace = shared_redis
    use_redis_broker(redis_url, namespace)
    client = redis_client()
    file_clock.set(START)
    env = fault_env(fault_db.url, redis_url, namespace, OUTREACH_ENGAGEMENT_CHANNEL="email")
    # Given 300 users due a goodbye, and a campaign of 600 contacts (300 a day) from 05:30
    campaign_id = make_campaign(CONTACTS, DAILY_LIMIT, start_at=CAMPAIGN_START)
    make_inactive_users(USERS)
    # And a worker, and two schedulers on the default schedules, started at 05:00
    processes.worker(env)
    schedulers = [processes.scheduler(env), processes.scheduler(env)]
    for scheduler in schedulers:
        wait_for_log(scheduler, "scheduler.started")
    wait_for(
        lambda: ", ".join(f"{s} {t}" for s, t in _expected_at(START) - set(_fires(schedulers))),
        timeout=60,
        what="the 05:00 catch-up fires",
    )
    by_hand: list[subprocess.Popen[str]] = []
    # When the clock moves through the day, stopping at every daily fire time
    for moment in STEPS:
        file_clock.set(moment)
        # (and an operator starts the campaign's batch twice at 05:30, the engagement sweep
        # twice at 06:00, while the schedulers fire)
        if moment == CAMPAIGN_START:
            by_hand += [_by_hand(env, "enqueue", "campaign", str(campaign_id)) for _ in range(2)]
        if moment == DAY.replace(hour=6):
            by_hand += [_by_hand(env, "enqueue", "engagement") for _ in range(2)]
        wait_for(
            lambda moment=moment: ", ".join(
                f"{s} {t}" for s, t in _expected_at(moment) - set(_fires(schedulers))
            ),
            timeout=60,
            what=f"the fires of {moment.isoformat()}",
        )
        for command in by_hand:
            command.wait(timeout=60)
        wait_for(lambda: settled(client, namespace), timeout=60, what="the fires' work")

    fires = _fires(schedulers)
    found = audit(webhook, mailbox)
    recipients = recipient_statuses(campaign_id)
    outcomes = outcomes_by_user()
    with database.connection_context():
        runs = EngagementRun.select().count()
        batches = [b.selected for b in CampaignBatch.select().order_by(CampaignBatch.number)]
    per_scheduler = [len(s.events("scheduler.fire")) for s in schedulers]
    lost = recipients["pending"] + recipients["queued"] + found.unsettled
    lost += USERS - engagement_states().get(GOODBYE_SENT, 0) + len(found.sent_not_arrived)
    figures.record(
        Figures(
            "5 two schedulers, sweeps x2",
            sent=found.sent,
            duplicates=found.duplicates + sum(n - 1 for n in fires.values()),
            lost=lost,
            unknown=len(found.unknown),
            failed=found.failed,
            repeats_absorbed=found.repeats_absorbed,
            note=f"{len(fires)} fires ({per_scheduler[0]} + {per_scheduler[1]}); {runs} runs",
        )
    )

    # Then every fire of the day ran exactly once, whichever scheduler took it
    assert {fire: n for fire, n in fires.items() if n > 1} == {}
    for moment in [START, *STEPS]:
        assert _expected_at(moment) <= set(fires)
    assert all(proc.alive() for proc in schedulers)
    # And the operator's commands worked, or refused in one line (no batch due: it has run)
    for command in by_hand:
        _, stderr = command.communicate()
        assert command.returncode == 0 or (
            command.returncode == 2 and stderr.count("\n") == 1 and "no batch is due" in stderr
        ), stderr
    # And each message was sent once: every user one goodbye, every contact one message
    assert engagement_states() == {GOODBYE_SENT: USERS}
    goodbyes = outbox_rows("engagement")
    assert len(goodbyes) == USERS and {r.status for r in goodbyes} == {"sent"}
    assert all(o.count("succeeded") == 1 for o in outcomes.values()) and len(outcomes) == USERS
    assert recipients == {"sent": CONTACTS}
    assert batches == [DAILY_LIMIT, CONTACTS - DAILY_LIMIT]
    assert len(webhook.delivered_keys()) == CONTACTS
    assert found.duplicates == 0, found.duplicate_detail
    assert lost == 0 and found.unknown == {}
    assert found.sent_not_arrived == set() and found.arrived_not_sent == set()
    assert dead_letters(client, namespace) == {}
