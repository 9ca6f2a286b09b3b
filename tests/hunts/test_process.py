"""One hunt's run: matched ads become leads, contacted-ad records and outbox messages, within the
day's pacing limit and the channel credits (seed 001's test strategy, and the issue's cases)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from storage.db import database
from storage.errors import NotFound
from storage.models import Account, ContactedAd, Hunt, Lead, OutboxMessage, User
from tests.lanes import delivery_messages
from worker.hunts import pacing
from worker.hunts.process import run_hunt


def contacted_ads(hunt_id: int) -> list[int]:
    return sorted(c.ad_id for c in ContactedAd.select().where(ContactedAd.hunt == hunt_id))


def delivery_args(broker) -> list[list]:
    """The arguments of each delivery message on the broker: a list of outbox ids each."""

    return [list(m.args) for m in delivery_messages(broker)]


def test_matching_ads_become_leads_contacted_ads_and_outbox_messages(
    db, clock, stub_broker, make_ads, make_hunt
):
    # Given two matching ads, and one that does not match (another department)
    ids = make_ads(2)
    make_ads(1, start=3, postal_code="69001")
    hunt = make_hunt(daily_pacing_limit=None)
    # When the hunt runs
    result = run_hunt(hunt.id)
    # Then both matching ads are leads of the account, at stage `nouveau`
    assert result["contacted"] == 2
    leads = list(Lead.select().order_by(Lead.ad))
    assert [(lead.ad_id, lead.account_id, lead.hunt_id, lead.stage) for lead in leads] == [
        (ad_id, hunt.account_id, hunt.id, "nouveau") for ad_id in sorted(ids)
    ]
    # And each has a contacted-ad record pointing at its outbox message
    for contact in ContactedAd.select():
        message = OutboxMessage.get_by_id(contact.outbox_message_id)
        assert message.idempotency_key == f"hunt:{hunt.id}:ad:{contact.ad_id}"
        assert message.source == "hunt"
        assert message.channel == contact.channel == "whatsapp"
        assert contact.day.isoformat() == "2026-03-02"
    # The message is the template filled with the ad, sent to the owner's phone
    first = OutboxMessage.get(OutboxMessage.idempotency_key == f"hunt:{hunt.id}:ad:{ids[0]}")
    assert first.recipient == "+33600000001"
    assert first.body == "Bonjour Owner 1, votre Renault Clio 1 à 8000 € m'intéresse."
    # Only outbox ids are on the broker, never a phone number or a name
    # (the page's deliveries are enqueued together once it commits: one group)
    assert delivery_args(stub_broker) == [
        [[m.id for m in OutboxMessage.select().order_by(OutboxMessage.id)]]
    ]
    # And the scan time is recorded
    assert Hunt.get_by_id(hunt.id).last_scan_at == clock.now()


def test_a_second_run_creates_no_duplicate_lead_or_message(db, clock, make_ads, make_hunt):
    make_ads(2)
    hunt = make_hunt(daily_pacing_limit=None)
    run_hunt(hunt.id)
    # When the hunt runs again (the same day, or a redelivered message)
    again = run_hunt(hunt.id)
    # Then nothing new is created
    assert again["contacted"] == 0
    assert Lead.select().count() == 2
    assert ContactedAd.select().count() == 2
    assert OutboxMessage.select().count() == 2


def test_limit_3_with_10_ads_contacts_3_today_and_3_more_tomorrow(db, clock, make_ads, make_hunt):
    # Given 10 matching ads and a hunt limited to 3 a day
    ids = make_ads(10)
    hunt = make_hunt(daily_pacing_limit=3)
    # When it runs today, and again today
    assert run_hunt(hunt.id)["contacted"] == 3
    second = run_hunt(hunt.id)
    assert (second["contacted"], second["stopped"]) == (0, "pacing_limit")
    # Then the 3 newest ads were contacted
    assert contacted_ads(hunt.id) == sorted(ids[:3])
    assert pacing.today_count(hunt.id) == 3
    # When it runs tomorrow
    clock.advance(timedelta(days=1))
    assert run_hunt(hunt.id)["contacted"] == 3
    # Then 3 more, the next newest
    assert contacted_ads(hunt.id) == sorted(ids[:6])
    assert pacing.today_count(hunt.id) == 3


def test_the_same_hunt_run_twice_at_once_still_contacts_3(db, clock, make_ads, make_hunt):
    # Given 10 matching ads and a hunt limited to 3 a day
    make_ads(10)
    hunt = make_hunt(daily_pacing_limit=3)
    # When the same hunt message is processed by four workers at the same moment
    barrier = threading.Barrier(4)
    results: list[dict] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with database.connection_context():
                barrier.wait()
                results.append(run_hunt(hunt.id))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then 3 ads were contacted in all: 3 leads, 3 records, 3 messages, a count of 3
    assert errors == []
    assert sum(r["contacted"] for r in results) == 3
    assert Lead.select().count() == 3
    assert ContactedAd.select().count() == 3
    assert OutboxMessage.select().count() == 3
    assert pacing.today_count(hunt.id) == 3


def test_2_credits_left_with_a_limit_of_5_contacts_2(db, clock, make_ads, make_hunt):
    make_ads(10)
    hunt = make_hunt(daily_pacing_limit=5, credits={"whatsapp": 2})
    result = run_hunt(hunt.id)
    assert result["contacted"] == 2
    assert result["stopped"] == "no_credits"
    assert OutboxMessage.select().count() == 2
    assert pacing.today_count(hunt.id) == 2


def test_when_a_channel_runs_out_the_next_channel_takes_over(db, clock, make_ads, make_hunt):
    # Given whatsapp first with 1 credit, then email with 5
    make_ads(4)
    hunt = make_hunt(
        daily_pacing_limit=3,
        channels=["whatsapp", "email"],
        credits={"whatsapp": 1, "email": 5},
    )
    run_hunt(hunt.id)
    channels = [c.channel for c in ContactedAd.select().order_by(ContactedAd.id)]
    assert channels == ["whatsapp", "email", "email"]
    recipients = [m.recipient for m in OutboxMessage.select().order_by(OutboxMessage.id)]
    assert recipients[0].startswith("+336")
    assert recipients[1].endswith("@example.com")
    assert pacing.counts_for_day(hunt.id, pacing.today(hunt.id)[0]) == {
        "*": 3,
        "whatsapp": 1,
        "email": 2,
    }


def test_ads_without_a_usable_contact_are_skipped(db, clock, make_ads, make_hunt):
    make_ads(1, start=1, owner_phone=None)
    ok = make_ads(1, start=2)
    hunt = make_hunt(daily_pacing_limit=None, channels=["whatsapp"])
    assert run_hunt(hunt.id)["contacted"] == 1
    assert contacted_ads(hunt.id) == ok


def test_an_ad_already_a_lead_through_another_hunt_is_not_contacted_again(
    db, clock, make_ads, make_hunt
):
    make_ads(3)
    first = make_hunt(daily_pacing_limit=2)
    second = make_hunt(daily_pacing_limit=5, name="Same account, wider")
    run_hunt(first.id)
    result = run_hunt(second.id)
    # Only the ad the first hunt left is new for the account
    assert result["contacted"] == 1
    assert Lead.select().count() == 3


def test_another_account_may_contact_the_same_ad(db, clock, make_ads, make_hunt):
    make_ads(1)
    mine = make_hunt(daily_pacing_limit=None)
    other_account = Account.create(name="Other", created_at=clock.now())
    other_owner = User.create(account=other_account, name="Bob", created_at=clock.now())
    from tests.hunts.conftest import definition
    from worker.hunts.definition import create_hunt

    theirs = create_hunt(definition(other_owner))
    assert run_hunt(mine.id)["contacted"] == 1
    assert run_hunt(theirs.id)["contacted"] == 1
    assert Lead.select().count() == 2


def test_a_paused_hunt_contacts_nobody(db, clock, make_ads, make_hunt):
    make_ads(3)
    hunt = make_hunt(status="paused")
    result = run_hunt(hunt.id)
    assert result["contacted"] == 0 and result["stopped"] == "paused"
    assert OutboxMessage.select().count() == 0


def test_an_unknown_hunt_is_refused(db, clock):
    with pytest.raises(NotFound, match="hunt 999 does not exist"):
        run_hunt(999)
