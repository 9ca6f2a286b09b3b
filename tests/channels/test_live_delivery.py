"""Done when: messages queued through the outbox reach each channel's test server, once.

- on the real Redis and PostgreSQL, delivered by the Procfile's own `dramatiq` worker process;
- on fakeredis, by an in-process dramatiq worker, with the delivery enqueued twice.
"""

from __future__ import annotations

import json
import threading

import dramatiq
from dramatiq import Middleware

from storage.db import database
from storage.models import OutboxMessage
from storage.settings import get_settings
from tests.processes import wait_until, worker_process
from worker.actors.delivery import deliver_outbox_message
from worker.outbox import queue_message

WAHA_SENT = {"id": "true_33612345678@c.us_3EB0"}


def statuses(ids: list[int]) -> dict[int, str]:
    with database.connection_context():
        query = OutboxMessage.select(OutboxMessage.id, OutboxMessage.status).where(
            OutboxMessage.id.in_(ids)
        )
        return {row.id: row.status for row in query}


def test_one_message_per_channel_is_delivered_by_the_procfile_worker(
    live_services, smtp_server, waha, webhook_receiver, tmp_path
):
    # Given the four channels' test servers, and one message for each queued on real Redis
    waha.expect_request(
        "/api/sendText",
        method="POST",
        headers={"X-Api-Key": "waha-secret"},
        json={"session": "default", "chatId": "33612345678@c.us", "text": "by WhatsApp"},
    ).respond_with_json(WAHA_SENT, status=201)
    webhook_receiver.expect_request(
        "/hook", method="POST", headers={"Idempotency-Key": "e2e:webhook"}
    ).respond_with_json({"id": "wh-1"})
    env = {
        **live_services,
        "SMTP_URL": smtp_server.url,
        "SMTP_FROM": "outreach@example.org",
        "WAHA_URL": waha.url_for("/"),
        "WAHA_API_KEY": "waha-secret",
        "WEBHOOK_URL": webhook_receiver.url_for("/hook"),
    }
    with database.connection_context():
        rows = {
            "log": queue_message("e2e:log", "log", "+33612345678", "by the log"),
            "email": queue_message("e2e:email", "email", "jane.doe@example.com", "by email"),
            "whatsapp": queue_message(
                "e2e:whatsapp", "whatsapp", "+33 6 12 34 56 78", "by WhatsApp"
            ),
            "webhook": queue_message("e2e:webhook", "webhook", "+33 7 00 00 00 01", "by webhook"),
        }
    ids = [row.id for row in rows.values()]
    log_path = tmp_path / "worker.log"
    # When the Procfile's worker runs until every row is settled
    with worker_process(env, log_path):
        wait_until(
            lambda: set(statuses(ids).values()) == {"sent"},
            timeout=60,
            what=f"every channel's row to be sent (now {statuses(ids)})",
        )
    # Then each server saw exactly one request
    assert smtp_server.greetings == 1
    [email] = smtp_server.messages
    assert email["To"] == "jane.doe@example.com"
    assert email["X-Idempotency-Key"] == "e2e:email"
    assert len(waha.requests()) == 1
    assert len(webhook_receiver.requests()) == 1
    waha.check_assertions()
    webhook_receiver.check_assertions()
    # And the log channel's line is in the worker's JSON log, with the phone number masked
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    [sent] = [line for line in lines if line.get("event") == "message.sent"]
    assert sent["idempotency_key"] == "e2e:log"
    assert sent["recipient"] == "+***78"
    assert sent["outbox_id"] == rows["log"].id
    for personal in ("33612345678", "6 12 34 56 78", "jane.doe", "7 00 00 00 01"):
        assert personal not in text


class CountProcessed(Middleware):
    """Counts the delivery messages the worker actually processed."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.actor_name in ("deliver_outbox_message", "deliver_outbox_messages"):
            with self.lock:
                self.count += 1


def test_a_delivery_enqueued_twice_on_fakeredis_sends_once(
    db, clock, env, fakeredis_broker, webhook_receiver
):
    # Given a webhook message queued through the outbox on a Redis broker (fakeredis)
    env.setenv("WEBHOOK_URL", webhook_receiver.url_for("/hook"))
    get_settings.cache_clear()
    webhook_receiver.expect_request("/hook", method="POST").respond_with_json({"id": "wh-1"})
    counter = CountProcessed()
    fakeredis_broker.add_middleware(counter)
    row = queue_message("fake:webhook", "webhook", "+33612345678", "hello")
    # And the same delivery enqueued a second time (a redelivery, a relay that ran early)
    deliver_outbox_message.send(row.id)
    # When an in-process dramatiq worker drains the queue
    worker = dramatiq.Worker(fakeredis_broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        wait_until(lambda: counter.count == 2, timeout=30, what="both deliveries processed")
        worker.join()
    finally:
        worker.stop()
    # Then both messages ran, and the receiver got the message once
    assert len(webhook_receiver.requests()) == 1
    after = OutboxMessage.get_by_id(row.id)
    assert after.status == "sent"
    assert after.attempts == 1
    assert after.provider_message_id == "wh-1"
