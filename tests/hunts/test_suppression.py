"""A hunt spends no pacing slot and no credit on an owner who opted out, and does not contact
that ad; an owner suppressed after the contact was queued gets nothing, and the slot comes back."""

from __future__ import annotations

from storage.models import ContactedAd, Lead, OutboxMessage
from tests.campaigns.helpers import deliver_queued
from worker.consent.suppression import suppress
from worker.hunts import credits, pacing
from worker.hunts.process import run_hunt


def test_a_suppressed_owner_costs_no_slot_and_no_credit(
    db, clock, stub_broker, owner, make_ads, make_hunt
):
    # Given three matching ads, the owner of the newest of which wrote STOP before
    ids = make_ads(3)
    suppress(owner.account_id, "whatsapp", "+33600000001", "opt_out", "test")
    hunt = make_hunt(daily_pacing_limit=2, channels=["log"], credits={"log": 10})
    # When the hunt runs
    result = run_hunt(hunt.id)
    # Then the two others are contacted: the suppressed owner took no slot of the day's two
    assert result["contacted"] == 2
    assert result["skipped"] == {"suppressed": 1}
    contacted = sorted(c.ad_id for c in ContactedAd.select())
    assert contacted == sorted(ids[1:])
    assert not Lead.select().where(Lead.ad == ids[0]).exists()
    assert credits.available(hunt.id) == {"log": 8}
    assert pacing.get_count(hunt.id, result_day(result), "log") == 2


def test_an_owner_suppressed_after_the_contact_gives_back_the_slot_and_credit(
    db, clock, stub_broker, owner, make_ads, make_hunt
):
    make_ads(2)
    hunt = make_hunt(daily_pacing_limit=5, channels=["log"], credits={"log": 10})
    result = run_hunt(hunt.id)
    assert result["contacted"] == 2
    # The first owner opts out (through another kind of work) before the delivery runs
    suppress(owner.account_id, "email", "+33 6 00 00 00 01", "operator", "test")
    deliver_queued()
    statuses = {c.ad.owner_phone: c.status for c in ContactedAd.select()}
    assert statuses == {"+33600000001": "suppressed", "+33600000002": "sent"}
    assert OutboxMessage.select().where(OutboxMessage.status == "suppressed").count() == 1
    assert credits.available(hunt.id) == {"log": 9}
    assert pacing.get_count(hunt.id, result_day(result), "log") == 1


def result_day(result: dict):
    from datetime import date

    return date.fromisoformat(result["day"])
