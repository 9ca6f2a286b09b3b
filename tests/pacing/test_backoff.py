"""A provider's signal to stop (WAHA 463, HTTP 429 with Retry-After) pauses the sender; its rows
wait, none fails; `outreach sender resume` sends what waited, once each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pytest_httpserver import HTTPServer

from storage.models import OutboxMessage, Sender
from tests.cli.conftest import assert_refused, outreach
from tests.pacing.helpers import play_deliveries
from worker import delivery
from worker.delivery import Outcome
from worker.outbox import Outgoing, queue_messages


@pytest.fixture
def waha() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def waha_env(env, waha):
    env.setenv("WAHA_URL", waha.url_for("/"))
    env.setenv("OUTREACH_CHANNEL_TIMEOUT", "5")
    env.setenv("OUTREACH_WHATSAPP_MIN_SPACING", "1")
    env.setenv("OUTREACH_WHATSAPP_MAX_SPACING", "2")
    return env


def sent_texts(waha: HTTPServer) -> list[str]:
    return [json.loads(request.data)["text"] for request, response in waha.log
            if response.status_code == 200]  # fmt: skip


def queue_three() -> list[int]:
    rows = queue_messages(
        [Outgoing(f"k-{n}", "whatsapp", f"+3361234000{n}", f"message {n}") for n in range(3)]
    )
    return [row.id for row in rows]


def test_waha_463_pauses_the_sender_and_resume_sends_what_waited_once_each(
    db, clock, waha_env, waha
):
    # Given a WAHA that answers 463 to the first send, then accepts every send
    waha.expect_ordered_request("/api/sendText", method="POST").respond_with_json(
        {"message": "slow down"}, status=463
    )
    waha.expect_request("/api/sendText", method="POST").respond_with_json({"id": "ok"})
    ids = queue_three()
    # When the first is sent: the sender is paused for 24 h, and nothing failed
    outcomes = delivery.deliver_many(ids)
    assert outcomes[ids[0]] is Outcome.DEFERRED
    sender = Sender.get(Sender.name == "whatsapp:default")
    assert sender.paused_until == clock.now() + timedelta(hours=24)
    assert "HTTP 463" in sender.pause_reason
    # And a day less a minute later, the rows are still waiting, none sent, none failed
    clock.advance(timedelta(hours=23, minutes=59))
    for outbox_id in ids:
        delivery.deliver_many([outbox_id])
    assert {r.status for r in OutboxMessage.select()} == {"queued"}
    assert sent_texts(waha) == []
    # And the operator sees why
    listed = json.loads(outreach("sender", "list", "--json").stdout)
    assert [(s["name"], s["waiting"], s["sent_today"]) for s in listed] == [
        ("whatsapp:default", 3, 0)
    ]
    assert "HTTP 463" in listed[0]["pause_reason"]
    # When the operator resumes it: what waited is enqueued now, and goes out in its turns
    resumed = outreach("sender", "resume", "whatsapp:default", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["requeued"] == 3
    play_deliveries(ids, clock)
    # Then each message went out once
    assert sorted(sent_texts(waha)) == ["message 0", "message 1", "message 2"]
    assert {r.status for r in OutboxMessage.select()} == {"sent"}
    listed = json.loads(outreach("sender", "list", "--json").stdout)
    assert (listed[0]["sent_today"], listed[0]["paused_until"]) == (3, None)


def test_a_429_with_retry_after_pauses_the_sender_for_that_long(db, clock, waha_env, waha):
    waha.expect_ordered_request("/api/sendText", method="POST").respond_with_json(
        {}, status=429, headers={"Retry-After": "120"}
    )
    waha.expect_request("/api/sendText", method="POST").respond_with_json({"id": "ok"})
    ids = queue_three()
    delivery.deliver_many(ids)
    assert Sender.get(Sender.name == "whatsapp:default").paused_until == clock.now() + timedelta(
        seconds=120
    )
    # Without the operator, the rows go after the pause, once each
    play_deliveries(ids, clock)
    assert sorted(sent_texts(waha)) == ["message 0", "message 1", "message 2"]


def test_an_operator_pauses_a_sender_and_its_rows_wait(db, clock, waha_env, waha):
    waha.expect_request("/api/sendText", method="POST").respond_with_json({"id": "ok"})
    ids = queue_three()
    delivery.deliver_many(ids[:1])
    paused = outreach("sender", "pause", "whatsapp:default", "--hours", "2", "--reason", "check")
    assert paused.exit_code == 0, paused.output
    delivery.deliver_many(ids[1:])
    assert [r.status for r in OutboxMessage.select().order_by(OutboxMessage.id)] == [
        "sent",
        "queued",
        "queued",
    ]
    play_deliveries(ids, clock)
    assert len(sent_texts(waha)) == 3


def test_sender_commands_refuse_bad_input(db, clock):
    assert_refused(outreach("sender", "resume", "whatsapp:nobody"), "does not exist")
    assert_refused(outreach("sender", "set", "pigeon:1"), "unknown channel")
    assert_refused(
        outreach("sender", "set", "whatsapp:x", "--min-spacing", "5", "--max-spacing", "2"),
        "maximum spacing",
    )
    assert_refused(outreach("sender", "set", "whatsapp:x", "--hours", "sun-mon 9:00-10:00"))
    assert_refused(outreach("sender", "hours", "always"), "--account")
    assert_refused(outreach("sender", "hours", "always", "--account", "99"), "does not exist")
    assert Sender.select().count() == 0


def test_a_sender_resumed_by_another_process_is_seen_at_once_by_a_worker_that_saw_it_paused(
    db, clock, env, waha
):
    # Given an unpaced webhook sender paused for an hour by a 429, as this worker saw it
    env.setenv("WEBHOOK_URL", waha.url_for("/hook"))
    waha.expect_ordered_request("/hook", method="POST").respond_with_json(
        {}, status=429, headers={"Retry-After": "3600"}
    )
    waha.expect_request("/hook", method="POST").respond_with_json({"id": "ok"})
    rows = queue_messages(
        [Outgoing(f"k-hook-{n}", "webhook", f"+3361234000{n}", f"message {n}") for n in range(3)]
    )
    ids = [row.id for row in rows]
    delivery.deliver_many(ids)
    assert {r.status for r in OutboxMessage.select()} == {"queued"}
    (sender,) = Sender.select().where(Sender.channel == "webhook")
    assert sender.paused_until == clock.now() + timedelta(hours=1)
    # When another process (the operator's `sender resume`) lifts the pause and requeues them
    Sender.update(paused_until=None, pause_reason=None).where(Sender.id == sender.id).execute()
    OutboxMessage.update(enqueued_at=clock.now()).execute()
    outcomes = delivery.deliver_many(ids)
    # Then this worker sends them now, not at the end of the pause it had read
    assert set(outcomes.values()) == {Outcome.SENT}, outcomes
    assert len([r for r, answer in waha.log if answer.status_code == 200]) == 3
