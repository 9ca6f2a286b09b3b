"""The real processes: `outreach web` under uvicorn, and a worker exposing its own metrics."""

from __future__ import annotations

import urllib.request

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from producers.api_tokens import create_token
from storage import clock
from storage.db import database
from storage.models import Account, OutboxMessage, User
from tests.conftest import REDIS_TEST_URL
from tests.processes import free_port, wait_until, web_process, worker_process
from tests.web.conftest import bearer, new_hunt, other_last_character
from worker.outbox import queue_message

pytestmark = [pytest.mark.process, pytest.mark.postgres, pytest.mark.redis]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_web_process_refuses_bad_tokens_fires_once_and_reports_it(live_services, tmp_path):
    # Given an account with a token and an active hunt, on PostgreSQL and Redis
    with database.connection_context():
        account = Account.create(name="Garage", timezone="Europe/Paris", created_at=clock.now())
        owner = User.create(account=account, name="Claire", created_at=clock.now())
        new_hunt(owner)
        token = create_token(account.id, "cron")["token"]
    with web_process(live_services, tmp_path / "web.log") as base:
        # When the cron route is called without a token, with one a character off, then twice
        missing = httpx.post(f"{base}/api/cron/hunts")
        near = httpx.post(f"{base}/api/cron/hunts", headers=bearer(other_last_character(token)))
        first = httpx.post(f"{base}/api/cron/hunts", headers=bearer(token))
        second = httpx.post(f"{base}/api/cron/hunts", headers=bearer(token))
        metrics = httpx.get(f"{base}/metrics")
    # Then the bad ones are refused, the fire happened once, one hunt message is on Redis
    assert (missing.status_code, near.status_code) == (401, 401)
    assert (first.json()["fired"], second.json()["fired"]) == (True, False)
    namespace = live_services["OUTREACH_REDIS_NAMESPACE"]
    assert redis.Redis.from_url(REDIS_TEST_URL).llen(f"{namespace}:hunt") == 1
    # And /metrics, parsed, shows that message waiting, and the 08:00 Paris fire (07:00 UTC)
    # made (no lag left), at 09:00 UTC: two hours after its time
    figures = samples(metrics.text)
    assert figures[("outreach_queue_messages", (("queue", "hunt"), ("state", "ready")))] == 1
    assert figures[("outreach_scheduler_fire_lag_seconds", (("schedule", "hunts"),))] == 0
    assert figures[("outreach_scheduler_last_fire_delay_seconds", (("schedule", "hunts"),))] == 7200


def test_a_worker_with_metrics_on_serves_dramatiq_counts(live_services, tmp_path):
    # Given a worker with its metrics on, on a port of its own
    port = free_port()
    env = {
        **live_services,
        "OUTREACH_WORKER_METRICS": "1",
        "dramatiq_prom_port": str(port),
        "dramatiq_prom_host": "127.0.0.1",
        "dramatiq_prom_db": str(tmp_path / "prometheus"),
    }
    with database.connection_context():
        row = queue_message("metrics:log:1", "log", "+33612345678", "hello")
    with worker_process(env, tmp_path / "worker.log"):

        def sent() -> bool:
            with database.connection_context():
                return OutboxMessage.get_by_id(row.id).status == "sent"

        wait_until(sent, timeout=60, what="the outbox row to be sent")

        def scraped() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                return str(answer.read().decode())

        def counted() -> bool:
            try:
                text = scraped()
            except OSError:
                return False
            return any(
                name == "dramatiq_messages_total" and value >= 1
                for (name, _), value in samples(text).items()
            )

        # Then its exposition server counts the delivery
        wait_until(counted, timeout=60, what="dramatiq_messages_total on the worker's port")
        figures = samples(scraped())
    actors = {
        dict(labels)["actor_name"]
        for (name, labels) in figures
        if name == "dramatiq_messages_total"
    }
    assert actors, figures
