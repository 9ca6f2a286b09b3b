"""The delivery actor end to end: real channels, real test servers, the in-process worker.

Runs on both databases (`db`); dramatiq's retries and dead-letter queue are the real ones.
"""

from __future__ import annotations

import pytest

from storage.models import Account, OutboxMessage
from storage.settings import get_settings
from tests.channels.conftest import log_lines
from tests.lanes import join_deliveries
from worker import outbox
from worker.actors.delivery import deliver_outbox_message, deliver_outbox_messages
from worker.delivery import Outcome, deliver
from worker.delivery_queue import lane_of
from worker.outbox import queue_message

PHONE = "+33 6 12 34 56 78"
WAHA_SENT = {"id": "true_33612345678@c.us_3EB0"}


def row_of(outbox_id: int) -> OutboxMessage:
    return OutboxMessage.get_by_id(outbox_id)


def test_deliver_sends_through_the_real_channel_and_records_the_provider_id(
    db, clock, channel_env, waha
):
    waha.expect_request("/api/sendText").respond_with_json(WAHA_SENT)
    row = queue_message("k-direct", "whatsapp", PHONE, "hello")
    assert deliver(row.id) is Outcome.SENT
    after = row_of(row.id)
    assert after.status == "sent"
    assert after.provider_message_id == "true_33612345678@c.us_3EB0"
    assert len(waha.requests()) == 1


def test_a_permanent_error_ends_failed_with_the_reason_and_no_retry(
    db, clock, channel_env, fast_retries, smtp_server, stub_broker, stub_worker
):
    # Given a recipient the SMTP server refuses
    smtp_server.refused.add("nobody@example.com")
    row = queue_message("k-refused", "email", "nobody@example.com", "hello")
    # When the worker delivers it
    join_deliveries(stub_broker)
    # Then the row is failed with the server's reason, after one attempt, nothing dead-lettered
    after = row_of(row.id)
    assert after.status == "failed"
    assert "recipient refused" in after.last_error and "550" in after.last_error
    assert after.attempts == 1
    assert smtp_server.greetings == 1
    assert smtp_server.messages == []
    assert stub_broker.dead_letters == []


def test_a_transient_error_then_success_ends_sent_on_the_second_attempt(
    db, clock, channel_env, fast_retries, waha, stub_broker, stub_worker
):
    waha.expect_ordered_request("/api/sendText").respond_with_json({"error": "busy"}, status=503)
    waha.expect_ordered_request("/api/sendText").respond_with_json(WAHA_SENT, status=201)
    row = queue_message("k-503-then-ok", "whatsapp", PHONE, "hello")
    join_deliveries(stub_broker)
    after = row_of(row.id)
    assert after.status == "sent"
    assert after.attempts == 2
    assert after.provider_message_id == "true_33612345678@c.us_3EB0"
    assert len(waha.requests()) == 2
    assert stub_broker.dead_letters == []


def test_exhausted_retries_end_failed_and_dead_lettered(
    db, clock, channel_env, waha, stub_broker, stub_worker, monkeypatch
):
    # Given a WAHA that always answers 500, and a row whose delivery we send ourselves
    waha.expect_request("/api/sendText").respond_with_json({"error": "down"}, status=500)
    monkeypatch.setattr(outbox, "enqueue_delivery", lambda outbox_id, account_id: None)
    row = queue_message("k-always-500", "whatsapp", PHONE, "hello")
    # When it is delivered with one retry allowed
    message = deliver_outbox_message.send_with_options(
        args=(row.id,), max_retries=1, min_backoff=10, max_backoff=20
    )
    join_deliveries(stub_broker)
    # Then both attempts were made, the row is failed, the message is in the dead-letter queue
    after = row_of(row.id)
    assert after.status == "failed"
    assert after.last_error.startswith("retries exhausted: ")
    assert "WAHA answered HTTP 500" in after.last_error
    assert after.attempts == 2
    assert len(waha.requests()) == 2
    assert [m.message_id for m in stub_broker.dead_letters] == [message.message_id]


def test_an_unset_channel_setting_ends_failed_at_once(
    db, clock, env, fast_retries, stub_broker, stub_worker
):
    env.delenv("SMTP_URL", raising=False)
    get_settings.cache_clear()
    row = queue_message("k-no-smtp", "email", "jane.doe@example.com", "hello")
    join_deliveries(stub_broker)
    after = row_of(row.id)
    assert after.status == "failed"
    assert "SMTP_URL is not set" in after.last_error
    assert after.attempts == 0  # never claimed for sending
    assert stub_broker.dead_letters == []


def test_forcing_the_log_channel_sends_email_to_the_log_instead(
    db, clock, channel_env, smtp_server, log_stream, stub_broker, stub_worker
):
    # Given staging's switch on, and a working SMTP server that must not be contacted
    channel_env.setenv("OUTREACH_FORCE_LOG_CHANNEL", "1")
    get_settings.cache_clear()
    row = queue_message("k-forced", "email", "jane.doe@example.com", "hello from staging")
    join_deliveries(stub_broker)
    after = row_of(row.id)
    # Then the row is sent by the log channel, and no SMTP conversation took place
    assert after.status == "sent"
    assert after.channel == "email"
    assert after.provider_message_id == "log:k-forced"
    assert smtp_server.greetings == 0
    assert smtp_server.messages == []
    [line] = [line for line in log_lines(log_stream) if line["event"] == "message.sent"]
    assert line["channel"] == "log"
    assert line["idempotency_key"] == "k-forced"
    assert line["recipient"] == "j***@example.com"


@pytest.mark.parametrize("value", ["0", ""])
def test_without_the_switch_email_goes_to_smtp(
    db, clock, channel_env, smtp_server, stub_broker, stub_worker, value
):
    channel_env.setenv("OUTREACH_FORCE_LOG_CHANNEL", value)
    get_settings.cache_clear()
    row = queue_message("k-real-smtp", "email", "jane.doe@example.com", "hello")
    join_deliveries(stub_broker)
    assert row_of(row.id).status == "sent"
    assert len(smtp_server.messages) == 1


def test_an_accounts_delivery_is_retried_and_dead_lettered_on_its_lane(
    db, clock, channel_env, fast_retries, waha, stub_broker, stub_worker
):
    # Given a WAHA that always answers 500, and a message of an account
    waha.expect_request("/api/sendText").respond_with_json({"error": "down"}, status=500)
    account = Account.create(name="Garage", sending_hours="always", created_at=clock.now())
    row = queue_message("k-lane-500", "whatsapp", PHONE, "hello", account_id=account.id)
    # When the worker delivers it until its retries run out
    join_deliveries(stub_broker)
    # Then every attempt ran from the account's lane, and the message died there
    assert row_of(row.id).status == "failed"
    assert len(waha.requests()) == 1 + deliver_outbox_messages.options["max_retries"]
    dead = {queue: len(m) for queue, m in stub_broker.dead_letters_by_queue.items() if m}
    assert dead == {lane_of(account.id): 1}
