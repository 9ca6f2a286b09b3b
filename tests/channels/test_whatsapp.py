"""The WhatsApp channel against an HTTP server standing in for WAHA."""

from __future__ import annotations

import pytest

from storage.errors import ConfigurationError
from storage.models import OutboxMessage
from storage.settings import get_settings
from tests.lanes import join_deliveries
from tests.processes import wait_until
from worker.channels import (
    Media,
    Outbound,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
    build_channel,
)
from worker.outbox import queue_message

PHONE = "+33 6 12 34 56 78"
CHAT_ID = "33612345678@c.us"
API_KEY = {"X-Api-Key": "waha-secret"}
# What WAHA answers for a sent text: the message, its id serialized with the chat.
WAHA_SENT = {"id": {"fromMe": True, "remote": CHAT_ID, "_serialized": "true_ABC123"}}


def whatsapp():
    get_settings.cache_clear()  # read the environment the test just set
    return build_channel("whatsapp", get_settings())


def test_a_text_is_posted_to_send_text_with_the_api_key(channel_env, waha):
    # Given WAHA answering only the exact sendText body, with the API key
    waha.expect_request(
        "/api/sendText",
        method="POST",
        headers=API_KEY,
        json={"session": "default", "chatId": CHAT_ID, "text": "Bonjour"},
    ).respond_with_json(WAHA_SENT, status=201)
    # When a text is sent to a phone number written with spaces
    provider_id = whatsapp().send(Outbound("k-text", PHONE, "Bonjour"))
    # Then WAHA got one request and the provider id comes from its answer
    assert len(waha.requests()) == 1
    waha.check_assertions()
    assert provider_id == "true_ABC123"


def test_a_plain_string_id_in_the_answer_is_the_provider_id(channel_env, waha):
    waha.expect_request("/api/sendText", method="POST").respond_with_json(
        {"id": "true_33612345678@c.us_3EB0"}
    )
    assert whatsapp().send(Outbound("k-id", PHONE, "hi")) == "true_33612345678@c.us_3EB0"


def test_media_goes_to_send_image_with_the_file_and_a_caption(channel_env, waha):
    waha.expect_request(
        "/api/sendImage",
        method="POST",
        headers=API_KEY,
        json={
            "session": "default",
            "chatId": CHAT_ID,
            "file": {
                "url": "https://cdn.example.org/img/promo.jpg",
                "mimetype": "image/jpeg",
                "filename": "promo.jpg",
            },
            "caption": "Look at this",
        },
    ).respond_with_json(WAHA_SENT, status=201)
    media = Media("https://cdn.example.org/img/promo.jpg", "image/jpeg")
    whatsapp().send(Outbound("k-image", PHONE, "Look at this", media))
    assert len(waha.requests()) == 1
    waha.check_assertions()


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        # WAHA Core: AvailableInPlusVersion is a NestJS 422
        (
            422,
            {
                "statusCode": 422,
                "message": "The feature is available only in Plus version. "
                "Check this out: https://waha.devlike.pro/",
                "error": "Unprocessable Entity",
            },
        ),
        (422, {"statusCode": 422, "message": "The method is not implemented by the engine."}),
        (501, {"statusCode": 501, "message": "Not Implemented"}),
    ],
)
def test_a_core_server_refusing_images_is_a_permanent_explained_failure(
    channel_env, waha, status, answer
):
    waha.expect_request("/api/sendImage", method="POST").respond_with_json(answer, status=status)
    media = Media("https://cdn.example.org/img/promo.jpg", "image/jpeg")
    with pytest.raises(PermanentSendError, match=r"cannot send images .*WAHA Plus"):
        whatsapp().send(Outbound("k-core", PHONE, "Look", media))
    # Sent once, not retried
    assert len(waha.requests()) == 1


def test_429_then_200_is_transient_then_sent(channel_env, waha):
    waha.expect_ordered_request("/api/sendText", method="POST").respond_with_json(
        {"message": "Too Many Requests"}, status=429
    )
    waha.expect_ordered_request("/api/sendText", method="POST").respond_with_json(WAHA_SENT)
    channel = whatsapp()
    with pytest.raises(TransientSendError, match="429"):
        channel.send(Outbound("k-429", PHONE, "hi"))
    assert channel.send(Outbound("k-429", PHONE, "hi")) == "true_ABC123"
    assert len(waha.requests()) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, TransientSendError),
        (502, TransientSendError),
        (503, TransientSendError),
        (463, TransientSendError),  # WAHA: slow down on new contacts
        (400, PermanentSendError),
        (401, PermanentSendError),
        (404, PermanentSendError),
    ],
)
def test_http_statuses_sort_into_transient_and_permanent(channel_env, waha, status, error):
    waha.expect_request("/api/sendText").respond_with_json({"message": "no"}, status=status)
    with pytest.raises(error, match=str(status)):
        whatsapp().send(Outbound("k-status", PHONE, "hi"))


def test_a_slow_answer_is_an_uncertain_send(channel_env, short_timeout, waha):
    # Given WAHA answering long after the channel's timeout (OUTREACH_CHANNEL_TIMEOUT, 0.5 s)
    waha.expect_request("/api/sendText").respond_with_handler(waha.slow(200, WAHA_SENT))
    # Then the channel says it cannot know whether the text went out
    with pytest.raises(UncertainSendError, match="no answer came"):
        whatsapp().send(Outbound("k-slow", PHONE, "hi"))


def test_a_slow_answer_leaves_the_message_unknown_and_never_resends_it(
    db, clock, channel_env, short_timeout, fast_retries, waha, stub_broker, stub_worker
):
    # Given WAHA that takes the text but answers too late
    waha.expect_request("/api/sendText").respond_with_handler(waha.slow(200, WAHA_SENT))
    # When the delivery actor sends it, retries allowed
    row = queue_message("k-slow-actor", "whatsapp", PHONE, "hi")
    join_deliveries(stub_broker)
    # Then the row waits for an operator as `unknown`, after exactly one request
    row = OutboxMessage.get_by_id(row.id)
    assert row.status == "unknown"
    assert "no answer after the message went out" in row.last_error
    # (the server logs a request once its slow answer is released)
    waha.released.set()
    wait_until(lambda: len(waha.requests()) >= 1, timeout=10, what="the slow request to end")
    assert len(waha.requests()) == 1
    assert row.attempts == 1


@pytest.mark.parametrize(
    ("recipient", "reason"),
    [
        ("call me", "not a phone number"),
        # A national number: WhatsApp needs the country, and a guess could reach someone else
        ("06 12 34 56 78", "no country code"),
    ],
)
def test_a_recipient_that_is_not_a_whatsapp_number_is_refused_without_a_request(
    channel_env, waha, recipient, reason
):
    with pytest.raises(PermanentSendError, match=reason):
        whatsapp().send(Outbound("k-bad", recipient, "hi"))
    assert waha.requests() == []


@pytest.mark.parametrize("url", [None, "waha.local:3000", "ftp://waha.local", "http://"])
def test_an_unset_or_malformed_waha_url_is_a_configuration_error(env, url):
    env.delenv("WAHA_URL", raising=False)
    if url is not None:
        env.setenv("WAHA_URL", url)
    with pytest.raises(ConfigurationError, match="WAHA_URL"):
        whatsapp()


@pytest.mark.parametrize(
    ("recipient", "chat_id"),
    [
        ("+33612345678", CHAT_ID),
        ("0033 6.12.34.56.78", CHAT_ID),
        ("+1 (415) 555-2671", "14155552671@c.us"),
        (CHAT_ID, CHAT_ID),
        ("120363025246125486@g.us", "120363025246125486@g.us"),
    ],
)
def test_recipients_become_chat_ids(channel_env, waha, recipient, chat_id):
    waha.expect_request("/api/sendText").respond_with_json(WAHA_SENT)
    whatsapp().send(Outbound("k-chat", recipient, "hi"))
    [request] = waha.requests()
    assert request.json["chatId"] == chat_id
