"""Design invariant 6: no phone number, email address or WhatsApp id in any line a delivery logs.

Deliveries run through the real actor and channels; the whole JSON log stream is searched.
"""

from __future__ import annotations

import pytest

from storage.models import OutboxMessage
from tests.channels.conftest import log_lines
from tests.lanes import join_deliveries
from worker.actors.delivery import deliver_outbox_message, deliver_outbox_messages
from worker.outbox import queue_message

# Recipients for the log channel, as people write them.
PHONES = {
    "+33 6 12 34 56 78": "12 34 56",
    "+33612345678": "33612345678",
    "06.12.34.56.78": "12.34.56",
    "0033 6 12 34 56 78": "0033 6",
    "+1 (415) 555-2671": "555-2671",
    "+44-20-7946-0958": "20-7946",  # (bare digits could show up by chance in a timestamp)
    "tel:+33698765432": "33698765432",
    "(415) 555-2672": "555-2672",
    "415-555-2673": "555-2673",
    "06-12-34-56-79": "34-56",
}
EMAIL = "jane.doe@example.com"
JID = "33687654321@c.us"


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    for actor in (deliver_outbox_message, deliver_outbox_messages):
        monkeypatch.setitem(actor.options, "max_retries", 0)


def test_every_line_a_delivery_writes_is_masked(
    db, clock, channel_env, smtp_server, waha, no_retries, log_stream, stub_broker, stub_worker
):
    # Given sends that log personal data in every way a delivery can:
    # the log channel (recipient and body) ...
    for n, phone in enumerate(PHONES):
        queue_message(f"mask:log:{n}", "log", phone, f"Call 06 12 34 56 78 or write to {EMAIL}")
    # ... an SMTP refusal that names the address ...
    smtp_server.refused.add(EMAIL)
    queue_message("mask:email", "email", EMAIL, "hello")
    # ... a WAHA refusal that echoes the chat id (permanent) ...
    waha.expect_request(
        "/api/sendText", json={"session": "default", "chatId": JID, "text": "a"}
    ).respond_with_json({"error": f"chat {JID} not found"}, status=400)
    queue_message("mask:waha-400", "whatsapp", JID, "a")
    # ... and a WAHA failure that does the same until retries run out (dramatiq's own lines)
    waha.expect_request("/api/sendText").respond_with_json(
        {"error": f"engine crashed while sending to {JID}"}, status=500
    )
    queue_message("mask:waha-500", "whatsapp", "+33 6 87 65 43 21", "b")
    # When the worker delivers them all
    join_deliveries(stub_broker)
    # Then every send happened and was logged ...
    assert OutboxMessage.select().where(OutboxMessage.status == "sent").count() == len(PHONES)
    lines = log_lines(log_stream)
    events = [line["event"] for line in lines]
    assert events.count("message.sent") == len(PHONES)
    assert events.count("delivery.failed") == 2
    assert "delivery.exhausted" in events
    assert any(
        "exception" in line and "Failed to process message" in line["event"] for line in lines
    )
    # ... and no line holds a phone number, an address or a WhatsApp id in any form
    text = log_stream.getvalue()
    for phone, telltale in PHONES.items():
        assert phone not in text
        assert telltale not in text, phone
    for personal in ("06 12 34 56 78", "jane.doe", "33687654321", "6 87 65 43 21"):
        assert personal not in text, personal
    # While what an operator needs stays readable
    sent = {line["idempotency_key"]: line for line in lines if line["event"] == "message.sent"}
    assert sent["mask:log:0"]["recipient"] == "+***78"
    assert sent["mask:log:0"]["body"] == "Call 0***78 or write to j***@example.com"
