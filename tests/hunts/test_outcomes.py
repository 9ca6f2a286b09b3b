"""Delivery outcomes flow back to the hunt: sent consumes the credit and moves the lead to
`contacte`; failed gives the credit and the day's pacing slot back."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest

from storage.models import ContactedAd, HuntChannelCredit, Lead, OutboxMessage
from tests.lanes import join_deliveries
from worker import delivery
from worker.hunts import pacing
from worker.hunts.process import run_hunt
from worker.logging import configure_logging
from worker.outbox import queue_message
from worker.outcomes import notify_outcome


def credit(hunt_id: int, channel: str) -> tuple[int, int, int]:
    row = HuntChannelCredit.get(
        (HuntChannelCredit.hunt == hunt_id) & (HuntChannelCredit.channel == channel)
    )
    return row.allocated, row.reserved, row.consumed


@pytest.fixture
def no_whatsapp_server(env):
    # With no WAHA server configured, every WhatsApp send fails permanently.
    env.delenv("WAHA_URL", raising=False)
    env.delenv("OUTREACH_FORCE_LOG_CHANNEL", raising=False)


def test_queued_contacts_hold_a_credit_until_their_outcome(db, clock, make_ads, make_hunt):
    make_ads(3)
    hunt = make_hunt(channels=["log"], credits={"log": 5}, daily_pacing_limit=None)
    run_hunt(hunt.id)
    # Three reserved, none consumed yet; the leads wait at `nouveau`
    assert credit(hunt.id, "log") == (5, 3, 0)
    assert {lead.stage for lead in Lead.select()} == {"nouveau"}


def test_sent_consumes_the_credit_and_moves_the_lead_to_contacte(
    db, clock, stub_broker, stub_worker, make_ads, make_hunt
):
    make_ads(3)
    hunt = make_hunt(channels=["log"], credits={"log": 5}, daily_pacing_limit=None)
    run_hunt(hunt.id)
    # When the deliveries run
    join_deliveries(stub_broker)
    stub_worker.join()
    # Then every message is sent, its credit consumed and its lead at `contacte`
    assert {m.status for m in OutboxMessage.select()} == {"sent"}
    assert credit(hunt.id, "log") == (5, 0, 3)
    assert {lead.stage for lead in Lead.select()} == {"contacte"}
    assert {c.status for c in ContactedAd.select()} == {"sent"}
    assert pacing.today_count(hunt.id) == 3


def test_failed_gives_the_slot_and_the_credit_back(
    db, clock, no_whatsapp_server, stub_broker, stub_worker, make_ads, make_hunt
):
    # Given a hunt limited to 2 a day on WhatsApp, whose sends fail
    make_ads(4)
    hunt = make_hunt(channels=["whatsapp"], credits={"whatsapp": 5}, daily_pacing_limit=2)
    assert run_hunt(hunt.id)["contacted"] == 2
    # When the deliveries fail
    join_deliveries(stub_broker)
    stub_worker.join()
    # Then the slots and credits are free again; the leads stay `nouveau`
    assert {m.status for m in OutboxMessage.select()} == {"failed"}
    assert pacing.today_count(hunt.id) == 0
    assert credit(hunt.id, "whatsapp") == (5, 0, 0)
    assert {lead.stage for lead in Lead.select()} == {"nouveau"}
    assert {c.status for c in ContactedAd.select()} == {"failed"}
    # And a run the same day uses them for the next ads (the failed ones are not retried)
    again = run_hunt(hunt.id)
    assert again["contacted"] == 2
    assert ContactedAd.select().count() == 4


def test_unknown_keeps_the_slot_and_consumes_the_credit(db, clock, make_ads, make_hunt):
    # Given a message whose send died mid-way (left `sending` past the stale window)
    make_ads(1)
    hunt = make_hunt(channels=["log"], credits={"log": 5}, daily_pacing_limit=1)
    run_hunt(hunt.id)
    message = OutboxMessage.get()
    OutboxMessage.update(status="sending", claimed_at=clock.now() - timedelta(hours=1)).execute()
    # When a later delivery attempt finds it
    assert delivery.deliver(message.id) == delivery.Outcome.UNKNOWN
    # Then it may have gone out: the credit is consumed and the slot stays taken
    assert credit(hunt.id, "log") == (5, 0, 1)
    assert pacing.today_count(hunt.id) == 1
    assert ContactedAd.get().status == "unknown"
    assert Lead.get().stage == "nouveau"


def test_an_outcome_reported_twice_is_applied_once(
    db, clock, no_whatsapp_server, make_ads, make_hunt
):
    make_ads(2)
    hunt = make_hunt(channels=["whatsapp"], credits={"whatsapp": 5}, daily_pacing_limit=2)
    run_hunt(hunt.id)
    for message in OutboxMessage.select():
        assert delivery.deliver(message.id) == delivery.Outcome.FAILED
    # A third contact is queued and holds a slot and a credit...
    make_ads(1, start=3)
    run_hunt(hunt.id)
    assert pacing.today_count(hunt.id) == 1
    # ...when the first failure is reported again
    notify_outcome(OutboxMessage.get(OutboxMessage.status == "failed"))
    # Then nothing more is given back
    assert pacing.today_count(hunt.id) == 1
    assert credit(hunt.id, "whatsapp") == (5, 1, 0)


def test_one_window_of_mixed_outcomes_for_two_hunts_settles_each_contact(
    db, clock, make_ads, make_hunt, monkeypatch
):
    # Given two hunts with two contacts queued each, and a receiver that refuses one of each
    make_ads(4)
    first = make_hunt(channels=["log"], credits={"log": 5}, daily_pacing_limit=2)
    second = make_hunt(channels=["log"], credits={"log": 5}, daily_pacing_limit=2)
    run_hunt(first.id)
    run_hunt(second.id)
    rows = list(OutboxMessage.select().order_by(OutboxMessage.id))
    assert len(rows) == 4
    refused = {rows[0].recipient, rows[3].recipient}

    class Refusing:
        name = "log"
        deduplicates = False

        def send(self, message):
            if message.recipient in refused and message.idempotency_key in {
                rows[0].idempotency_key,
                rows[3].idempotency_key,
            }:
                raise delivery.PermanentSendError("refused")
            return "ok"

    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: Refusing())
    # When all four go out in one window, their outcomes recorded together (newest first)
    outcomes = delivery.deliver_many([r.id for r in reversed(rows)])
    # Then each hunt consumed one credit and got one credit and one pacing slot back
    assert sorted(outcomes.values()) == ["failed", "failed", "sent", "sent"]
    for hunt in (first, second):
        assert credit(hunt.id, "log") == (5, 0, 1)
        assert pacing.today_count(hunt.id) == 1
    assert sorted(c.status for c in ContactedAd.select()) == ["failed", "failed", "sent", "sent"]
    assert sorted(lead.stage for lead in Lead.select()) == [
        "contacte",
        "contacte",
        "nouveau",
        "nouveau",
    ]


def test_a_hunt_message_without_a_contact_is_reported_and_changes_nothing(
    db, clock, make_ads, make_hunt
):
    # Given a contact queued normally, and a hunt message that no contact names
    make_ads(1)
    hunt = make_hunt(channels=["log"], credits={"log": 5}, daily_pacing_limit=None)
    run_hunt(hunt.id)
    stray = queue_message("hunt:stray", "log", "+33611111111", "hello", source="hunt")
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO", stream)
    try:
        # When both are delivered in one window
        ids = [m.id for m in OutboxMessage.select().order_by(OutboxMessage.id)]
        delivery.deliver_many(ids)
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
    # Then the stray one is reported, and the real contact is settled as usual
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    assert [
        line["outbox_id"] for line in lines if line["event"] == "hunt.outcome_without_contact"
    ] == [stray.id]
    assert credit(hunt.id, "log") == (5, 0, 1)
