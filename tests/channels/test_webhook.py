"""The webhook channel against a real HTTP receiver, on its own and through the delivery actor."""

from __future__ import annotations

import pytest

from storage.errors import ConfigurationError
from storage.models import OutboxMessage
from storage.settings import get_settings
from tests.channels.conftest import free_port
from tests.lanes import join_deliveries
from worker.channels import (
    Media,
    Outbound,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
    build_channel,
)
from worker.outbox import queue_message

KEY = "campaign-7:contact-42"


def webhook():
    get_settings.cache_clear()  # read the environment the test just set
    return build_channel("webhook", get_settings())


def test_a_send_posts_json_with_the_idempotency_key_header(channel_env, webhook_receiver):
    webhook_receiver.expect_request(
        "/hook",
        method="POST",
        headers={"Idempotency-Key": KEY},
        json={
            "idempotency_key": KEY,
            "recipient": "+33612345678",
            "body": "Hello",
            "media": {"url": "https://cdn.example.org/a.png", "mimetype": "image/png"},
        },
    ).respond_with_json({"id": "wh-1"}, status=202)
    media = Media("https://cdn.example.org/a.png", "image/png")
    provider_id = webhook().send(Outbound(KEY, "+33612345678", "Hello", media))
    assert provider_id == "wh-1"
    assert len(webhook_receiver.requests()) == 1
    webhook_receiver.check_assertions()


def test_an_answer_without_an_id_gives_the_key_as_provider_id(channel_env, webhook_receiver):
    webhook_receiver.expect_request("/hook").respond_with_data("accepted", status=200)
    assert webhook().send(Outbound(KEY, "+33612345678", "Hello")) == KEY


def test_a_slow_receiver_is_an_uncertain_send(channel_env, short_timeout, webhook_receiver):
    # The request went out and no answer came: the channel cannot tell whether it arrived
    # (the delivery retries anyway, since this receiver drops a second copy by key).
    webhook_receiver.expect_request("/hook").respond_with_handler(webhook_receiver.slow())
    with pytest.raises(UncertainSendError, match="no answer came"):
        webhook().send(Outbound(KEY, "+33612345678", "Hello"))


def test_a_receiver_that_is_down_is_a_transient_error(channel_env, webhook_receiver):
    # Nothing listens on the port: nothing can have been sent, so trying again is safe
    channel_env.setenv("WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(TransientSendError, match="unreachable"):
        webhook().send(Outbound(KEY, "+33612345678", "Hello"))


def test_a_400_is_permanent(channel_env, webhook_receiver):
    webhook_receiver.expect_request("/hook").respond_with_json({"error": "bad"}, status=400)
    with pytest.raises(PermanentSendError, match="400"):
        webhook().send(Outbound(KEY, "+33612345678", "Hello"))


@pytest.mark.parametrize("url", [None, "receiver.local/hook", "ftp://receiver.local/hook"])
def test_an_unset_or_malformed_webhook_url_is_a_configuration_error(env, url):
    env.delenv("WEBHOOK_URL", raising=False)
    if url is not None:
        env.setenv("WEBHOOK_URL", url)
    with pytest.raises(ConfigurationError, match="WEBHOOK_URL"):
        webhook()


# --- through the real delivery actor (retries with backoff) -----------------------------------


def deliver_through_the_actor(stub_broker, key: str = KEY) -> OutboxMessage:
    """Queue a webhook message and let the worker run until nothing is left to retry."""
    row = queue_message(key, "webhook", "+33612345678", "Hello")
    join_deliveries(stub_broker)
    return OutboxMessage.get_by_id(row.id)


def test_429_then_200_ends_sent_after_a_retry(
    db, clock, channel_env, fast_retries, webhook_receiver, stub_broker, stub_worker
):
    # Given a receiver that rate-limits the first request
    webhook_receiver.expect_ordered_request("/hook", method="POST").respond_with_json(
        {"error": "slow down"}, status=429
    )
    webhook_receiver.expect_ordered_request("/hook", method="POST").respond_with_json(
        {"id": "wh-after-429"}
    )
    # When the message is delivered by the worker
    row = deliver_through_the_actor(stub_broker)
    # Then the retry sent it: two requests, the same key on both, the row sent
    assert row.status == "sent"
    assert row.attempts == 2
    assert row.provider_message_id == "wh-after-429"
    requests = webhook_receiver.requests()
    assert [r.headers["Idempotency-Key"] for r in requests] == [KEY, KEY]
    assert stub_broker.dead_letters == []


def test_400_ends_failed_with_the_reason_and_no_retry(
    db, clock, channel_env, fast_retries, webhook_receiver, stub_broker, stub_worker
):
    webhook_receiver.expect_request("/hook").respond_with_json({"error": "unknown"}, status=400)
    row = deliver_through_the_actor(stub_broker)
    assert row.status == "failed"
    assert "webhook answered HTTP 400" in row.last_error
    assert row.attempts == 1
    assert len(webhook_receiver.requests()) == 1
    assert stub_broker.dead_letters == []


def test_a_timeout_is_retried_until_the_receiver_answers(
    db, clock, channel_env, short_timeout, fast_retries, webhook_receiver, stub_broker, stub_worker
):
    # Given a receiver too slow the first time, on time the second
    webhook_receiver.expect_ordered_request("/hook").respond_with_handler(
        webhook_receiver.slow(200, {"id": "too-late"})
    )
    webhook_receiver.expect_ordered_request("/hook").respond_with_json({"id": "wh-on-time"})
    row = deliver_through_the_actor(stub_broker)
    assert row.status == "sent"
    assert row.attempts == 2
    assert row.provider_message_id == "wh-on-time"
