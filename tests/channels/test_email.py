"""The email channel against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import pytest

from storage.errors import ConfigurationError
from storage.settings import get_settings
from tests.channels.conftest import free_port
from worker.channels import (
    Media,
    Outbound,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
    build_channel,
)


def email_channel():
    get_settings.cache_clear()  # read the environment the test just set
    return build_channel("email", get_settings())


def test_a_send_arrives_with_its_headers_and_body(channel_env, smtp_server):
    # Given the email channel pointed at a running SMTP server
    message = Outbound(
        "user-1:goodbye_sent:2026-03-02",
        "jane.doe@example.com",
        "Hello Jane,\nsee you soon.",
        Media("https://cdn.example.org/img/promo.jpg", "image/jpeg"),
    )
    # When a message is sent
    provider_id = email_channel().send(message)
    # Then the server received exactly it, with the key in its headers
    [received] = smtp_server.messages
    assert smtp_server.envelopes == [("outreach@example.org", ["jane.doe@example.com"])]
    assert received["From"] == "outreach@example.org"
    assert received["To"] == "jane.doe@example.com"
    assert received["Subject"] == "A message for you"
    assert received["X-Idempotency-Key"] == "user-1:goodbye_sent:2026-03-02"
    assert received["Message-ID"] == provider_id
    body = received.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert "Hello Jane,\nsee you soon." in body
    assert "https://cdn.example.org/img/promo.jpg" in body


def test_the_same_message_sent_again_keeps_its_message_id(channel_env, smtp_server):
    # A receiving system can drop a second copy only if the Message-ID is the same both times
    channel = email_channel()
    first = channel.send(Outbound("k-stable", "jane.doe@example.com", "hi"))
    second = channel.send(Outbound("k-stable", "jane.doe@example.com", "hi"))
    other = channel.send(Outbound("k-other", "jane.doe@example.com", "hi"))
    assert first == second != other
    assert [m["Message-ID"] for m in smtp_server.messages] == [first, first, other]
    assert first.startswith("<") and first.endswith("@example.org>")


def test_a_refused_recipient_is_a_permanent_error(channel_env, smtp_server):
    smtp_server.refused.add("nobody@example.com")
    with pytest.raises(PermanentSendError, match="refused"):
        email_channel().send(Outbound("k-550", "nobody@example.com", "hi"))
    assert smtp_server.messages == []


def test_a_greylisted_recipient_451_is_a_transient_error(channel_env, smtp_server):
    # 451 at RCPT is "come back later" (greylisting), not a refusal
    smtp_server.deferred.add("jane.doe@example.com")
    with pytest.raises(TransientSendError, match="451"):
        email_channel().send(Outbound("k-451-rcpt", "jane.doe@example.com", "hi"))
    assert smtp_server.messages == []


def test_451_to_the_message_data_is_a_transient_error(channel_env, smtp_server):
    smtp_server.defer_data = True
    with pytest.raises(TransientSendError, match="451"):
        email_channel().send(Outbound("k-451-data", "jane.doe@example.com", "hi"))
    assert smtp_server.messages == []


def test_a_message_taken_but_never_answered_is_an_uncertain_send(channel_env, smtp_server):
    # Given a server that keeps the message but answers after the channel gave up
    channel_env.setenv("OUTREACH_CHANNEL_TIMEOUT", "0.5")
    smtp_server.answer_late_seconds = 2.0
    # Then the channel cannot tell whether it was delivered: not a "try again"
    with pytest.raises(UncertainSendError, match="did not answer"):
        email_channel().send(Outbound("k-late", "jane.doe@example.com", "hi"))
    assert len(smtp_server.messages) == 1


def test_a_server_that_is_down_is_a_transient_error(env):
    # Given a port nothing listens on
    env.setenv("SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    env.setenv("OUTREACH_CHANNEL_TIMEOUT", "0.5")
    with pytest.raises(TransientSendError, match="unreachable"):
        email_channel().send(Outbound("k-down", "jane.doe@example.com", "hi"))


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "http://mail.example.org",
        "smtp://",
        "smtp://mail.example.org:notaport",
        "mail.example.org:25",
    ],
)
def test_an_unset_or_malformed_smtp_url_is_a_configuration_error(env, url):
    env.delenv("SMTP_URL", raising=False)
    if url is not None:
        env.setenv("SMTP_URL", url)
    with pytest.raises(ConfigurationError, match="SMTP_URL"):
        email_channel()


def test_a_message_of_another_email_sender_goes_out_from_its_address(channel_env, smtp_server):
    # Given a message whose sender is an address other than SMTP_FROM
    message = Outbound("k-sales", "jane.doe@example.com", "hi", sender="email:sales@acme.test")
    # When it is sent
    provider_id = email_channel().send(message)
    # Then the server got it from that address, envelope and header, and its Message-ID's domain
    [received] = smtp_server.messages
    assert smtp_server.envelopes == [("sales@acme.test", ["jane.doe@example.com"])]
    assert received["From"] == "sales@acme.test"
    assert provider_id.endswith("@acme.test>")


def test_a_message_of_the_default_email_sender_goes_out_from_smtp_from(channel_env, smtp_server):
    # Given a message whose sender is the default one (SMTP_FROM), and one with no sender
    channel = email_channel()
    default = "email:outreach@example.org"
    channel.send(Outbound("k-default", "jane.doe@example.com", "hi", sender=default))
    channel.send(Outbound("k-none", "jane.doe@example.com", "hi"))
    # Then both went out from SMTP_FROM
    assert [envelope[0] for envelope in smtp_server.envelopes] == ["outreach@example.org"] * 2
