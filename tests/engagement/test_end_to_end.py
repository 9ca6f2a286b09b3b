"""The daily run end to end: real PostgreSQL and Redis, the Procfile's `dramatiq` worker."""

from __future__ import annotations

from datetime import timedelta

import pytest

from producers.engagement import run_daily
from storage import clock as clock_module
from storage.db import database
from storage.models import Account, EngagementRun, OutboxMessage
from storage.models.engagement import ACTIVE, DORMANT, GOODBYE_SENT, REMIND_LATER
from tests.engagement.conftest import create_user, state_of
from tests.processes import wait_until, worker_process
from worker.engagement.runs import job_result

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]


def test_daily_run_on_real_services_with_a_procfile_worker(live_services, tmp_path):
    env = {**live_services, "OUTREACH_ENGAGEMENT_CHANNEL": "log"}
    now = clock_module.now()
    # Given users due for each check, one opted out and one not due, in PostgreSQL
    with database.connection_context():
        account = Account.create(name="Acme", created_at=now)
        inactive = [
            create_user(account, now, inactive_for=timedelta(days=14 + i), locale=locale)
            for i, locale in enumerate(["en", "fr", "pt-BR"])
        ]
        # (its own number: the run suppresses an opted-out user's addresses)
        opted_out = create_user(
            account,
            now,
            inactive_for=timedelta(days=30),
            opted_out=True,
            phone="+33600000009",
            whatsapp_jid="33600000009@c.us",
        )
        recent = create_user(account, now, inactive_for=timedelta(days=3))
        expired = create_user(
            account, now, state=GOODBYE_SENT, goodbye_expires_at=now - timedelta(hours=1)
        )
        reminded = create_user(account, now, state=REMIND_LATER, remind_at=now)
        # When the scheduler's entry point fires the run onto real Redis
        run_id = run_daily(now)["run_id"]
    # And the Procfile's worker processes it
    with worker_process(env, tmp_path / "worker.log"):

        def done() -> bool:
            # Read the row, not the report: the worker's watch must finish the run by itself.
            with database.connection_context():
                sent = OutboxMessage.select().where(OutboxMessage.status == "sent").count()
                return EngagementRun.get_by_id(run_id).finished_at is not None and sent == 3

        wait_until(done, timeout=90, what="the run to finish and the goodbyes to be sent")
    # Then every due user moved once, and each inactive one got one goodbye in their language
    with database.connection_context():
        assert [state_of(u).state for u in inactive] == [GOODBYE_SENT] * 3
        assert state_of(expired).state == DORMANT
        assert state_of(reminded).state == DORMANT
        assert state_of(opted_out).state == ACTIVE
        assert state_of(recent).state == ACTIVE
        bodies = {
            row.idempotency_key: row.body
            for row in OutboxMessage.select().where(OutboxMessage.source == "engagement")
        }
        assert bodies.keys() == {f"{u}:goodbye_sent:2026-03-02" for u in inactive}
        assert bodies[f"{inactive[1]}:goodbye_sent:2026-03-02"].startswith("Bonjour")
        result = job_result(run_id)
    # And the run's result adds up what the worker recorded
    assert (result["processed"], result["succeeded"], result["failed"], result["skipped"]) == (
        6,
        5,
        0,
        1,
    )
    # And the worker's JSON log has the end of the run, and no phone number in clear
    log = (tmp_path / "worker.log").read_text()
    assert '"event": "engagement.run.finished"' in log
    assert "33612345678" not in log
