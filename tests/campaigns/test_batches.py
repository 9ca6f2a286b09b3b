"""Batches a day until everyone is done (seed 002), and seed 003's runner cases, through the
tick, the batch actor and the delivery actor on the in-process broker."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from producers.campaigns import tick
from storage.errors import NotFound
from storage.models import (
    Campaign,
    CampaignBatch,
    CampaignRecipient,
    Contact,
    OutboxMessage,
)
from tests.campaigns.helpers import (
    batch_rows,
    deliver_queued,
    outbox_keys,
    recipients_by_status,
    reload,
)
from tests.conftest import T0
from tests.lanes import delivery_messages, join_deliveries
from worker import delivery
from worker.actors.campaigns import run_campaign_batch
from worker.campaigns import batches
from worker.campaigns.batches import BatchOutcome, claim_batch, run_batch
from worker.campaigns.progress import campaign_status
from worker.channels import Outbound, PermanentSendError
from worker.outcomes import notify_outcomes

DAY = timedelta(days=1)


@pytest.fixture
def run_due(clock, stub_broker, stub_worker):
    """A scheduler tick at the current time, then every batch and delivery it causes."""

    def run() -> dict:
        result = tick(clock.now())
        stub_broker.join("campaign", fail_fast=False)
        join_deliveries(stub_broker)
        return result

    return run


def contact_ids(contact_list) -> list[int]:
    return [
        c.id
        for c in Contact.select()
        .where(Contact.contact_list == contact_list.id)
        .order_by(Contact.id)
    ]


def test_17_contacts_limit_5_go_in_batches_of_5_5_5_2_on_four_days_then_complete(
    db, clock, make_list, make_campaign, run_due
):
    # Given 17 contacts and a campaign scheduled for 09:00 with a daily limit of 5
    contacts = make_list(17)
    campaign = make_campaign(contacts, daily_send_limit=5, start_at=T0.isoformat())
    assert campaign.status == "scheduled"
    sent_per_day = []
    for day in range(4):
        # When the scheduler ticks a few minutes after 09:00 on each of four days
        clock.set(T0 + day * DAY + timedelta(minutes=3))
        assert run_due()["enqueued"] == 1
        sent_per_day.append(OutboxMessage.select().where(OutboxMessage.status == "sent").count())
        current = reload(campaign)
        if day < 3:
            # Then the campaign runs, its next batch exactly 24 h after this one's 09:00
            assert current.status == "running"
            assert current.next_batch_at == T0 + (day + 1) * DAY
    # Then 5, 5, 5 and 2 were sent, once each, in contact order
    assert sent_per_day == [5, 10, 15, 17]
    expected = [f"campaign:{campaign.id}:contact:{cid}" for cid in contact_ids(contacts)]
    assert outbox_keys() == expected
    batches_done = batch_rows(campaign)
    assert [b.selected for b in batches_done] == [5, 5, 5, 2]
    assert [b["sent"] for b in campaign_status(campaign.id)["batches"]] == [5, 5, 5, 2]
    assert [b.remaining for b in batches_done] == [12, 7, 2, 0]
    assert [b.scheduled_at for b in batches_done] == [T0 + d * DAY for d in range(4)]
    # And the campaign is completed, with nothing more to come
    done = reload(campaign)
    assert done.status == "completed"
    assert done.completed_at == T0 + 3 * DAY + timedelta(minutes=3)
    assert done.first_batch_sent_at == T0 + timedelta(minutes=3)
    assert done.next_batch_at is None
    assert done.current_batch_number == 4
    assert recipients_by_status(campaign) == {"sent": 17}
    clock.set(T0 + 4 * DAY + timedelta(minutes=3))
    assert run_due()["enqueued"] == 0
    assert OutboxMessage.select().count() == 17


def test_a_scheduled_campaign_is_processed_to_completed(
    db, clock, make_list, make_campaign, run_due
):
    campaign = make_campaign(make_list(3), daily_send_limit=10, start_at=T0.isoformat())
    run_due()
    done = reload(campaign)
    assert done.status == "completed"
    assert done.started_at == T0
    assert done.completed_at == T0
    assert recipients_by_status(campaign) == {"sent": 3}


def test_messages_are_personalised_and_carry_the_media(
    db, clock, make_list, make_campaign, run_due
):
    # Given contacts with a name, no name, and a blank name, and a campaign with an image
    contact_list = make_list(1, first_name="  Léa  ")
    make_list(1, name=contact_list.name, start=2, first_name=None)
    make_list(1, name=contact_list.name, start=3, first_name="   ")
    campaign = make_campaign(
        contact_list,
        template="Hi {Name}! {name}, see our offer.",
        default_name_value="friend",
        media_url="https://cdn.example.com/offer.jpg",
        media_type="image/jpeg",
        start_at=T0.isoformat(),
    )
    # When its batch runs
    run_due()
    # Then each message uses the template, the contact's name or the default, and the media
    rows = list(OutboxMessage.select().order_by(OutboxMessage.id))
    assert [r.body for r in rows] == [
        "Hi Léa! Léa, see our offer.",
        "Hi friend! friend, see our offer.",
        "Hi friend! friend, see our offer.",
    ]
    assert {(r.media_url, r.media_mime) for r in rows} == {
        ("https://cdn.example.com/offer.jpg", "image/jpeg")
    }
    assert [r.recipient for r in rows] == ["+33610000001", "+33610000002", "+33610000003"]
    assert {r.source for r in rows} == {"campaign"}
    assert reload(campaign).status == "completed"


def test_progress_is_recorded_per_recipient_as_each_one_is_queued_and_sent(
    db, clock, make_list, make_campaign, stub_broker
):
    # Given a started campaign of 4 contacts with a limit of 3
    campaign = make_campaign(make_list(4), daily_send_limit=3, start_at=T0.isoformat())
    tick(clock.now())
    # When the batch runs but nothing is delivered yet
    batch = CampaignBatch.get()
    assert run_batch(campaign.id, batch.number).outcome is BatchOutcome.DONE
    # Then the three first recipients are queued in batch 1 and the fourth is still pending
    rows = list(
        CampaignRecipient.select()
        .where(CampaignRecipient.campaign == campaign.id)
        .order_by(CampaignRecipient.contact)
    )
    assert [(r.status, r.batch_number) for r in rows] == [
        ("queued", 1),
        ("queued", 1),
        ("queued", 1),
        ("pending", None),
    ]
    assert all(r.queued_at == T0 for r in rows[:3])
    # And one delivery message, naming the three queued recipients' outbox rows, is on the broker
    [message] = delivery_messages(stub_broker)
    assert sorted(message.args[0]) == sorted(r.id for r in OutboxMessage.select())


def test_a_campaign_with_no_contacts_is_completed(db, clock, make_list, make_campaign, run_due):
    campaign = make_campaign(make_list(0), start_at=T0.isoformat())
    run_due()
    done = reload(campaign)
    assert done.status == "completed"
    assert done.recipients_total == 0
    assert OutboxMessage.select().count() == 0


@pytest.mark.parametrize("status", ["paused", "cancelled", "completed", "failed", "draft"])
def test_a_batch_of_a_campaign_that_is_not_running_sends_nothing(
    db, clock, make_list, make_campaign, status
):
    # Given a batch claimed for a campaign that has since left the running state
    campaign = make_campaign(make_list(3), start_at=T0.isoformat())
    tick(clock.now())
    Campaign.update(status=status).where(Campaign.id == campaign.id).execute()
    # When its message is processed
    result = run_batch(campaign.id, 1)
    # Then nothing is sent and the unstarted batch is dropped (a resume schedules it afresh)
    assert result.outcome is BatchOutcome.SKIPPED
    assert OutboxMessage.select().count() == 0
    assert CampaignBatch.select().count() == 0
    assert reload(campaign).status == status


def test_an_unknown_campaign_is_refused_and_its_message_dead_lettered(
    db, clock, stub_broker, stub_worker
):
    with pytest.raises(NotFound, match="campaign 999 does not exist"):
        run_batch(999, 1)
    # Through the actor: no retries (throws), straight to the dead letters
    run_campaign_batch.send(999, 1)
    stub_broker.join("campaign", fail_fast=False)
    assert len(stub_broker.dead_letters) == 1


def test_an_unexpected_error_marks_the_campaign_failed_with_the_error_kept(
    db, clock, make_list, make_campaign, stub_broker, stub_worker, monkeypatch
):
    # Given a campaign whose run breaks on an unexpected error
    campaign = make_campaign(make_list(3), start_at=T0.isoformat())

    def broken(*args, **kwargs):
        raise RuntimeError("connection to the database lost")

    monkeypatch.setattr(batches, "queue_messages", broken)
    assert claim_batch(campaign.id, 1, T0)
    # When its batch message has used up its retries (none allowed here)
    run_campaign_batch.send_with_options(args=(campaign.id, 1), max_retries=0)
    stub_broker.join("campaign", fail_fast=False)
    # Then the campaign is failed, the error kept, and nothing of the broken chunk remains
    failed = reload(campaign)
    assert failed.status == "failed"
    assert "connection to the database lost" in failed.last_error
    assert failed.completed_at == T0
    assert failed.next_batch_at is None
    assert OutboxMessage.select().count() == 0
    assert recipients_by_status(campaign) == {"pending": 3}
    # And the scheduler leaves it alone from then on
    clock.set(T0 + DAY)
    assert tick(clock.now())["enqueued"] == 0


def test_a_failed_delivery_flows_back_and_does_not_stop_the_campaign(
    db, clock, make_list, make_campaign, run_due, monkeypatch
):
    # Given a channel that refuses the second contact for good
    class Refusing:
        name = "log"
        deduplicates = False

        def send(self, message: Outbound) -> str:
            if message.recipient.endswith("02"):
                raise PermanentSendError("number not on WhatsApp")
            return "ok"

    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: Refusing())
    campaign = make_campaign(make_list(4), daily_send_limit=2, start_at=T0.isoformat())
    # When two days of batches run
    run_due()
    clock.set(T0 + DAY)
    run_due()
    # Then the refused contact is failed with the reason, and the others were all sent
    rows = {
        r.contact.phone: r
        for r in CampaignRecipient.select().where(CampaignRecipient.campaign == campaign.id)
    }
    assert rows["+33610000002"].status == "failed"
    assert "number not on WhatsApp" in rows["+33610000002"].error
    assert recipients_by_status(campaign) == {"sent": 3, "failed": 1}
    history = campaign_status(campaign.id)["batches"]
    assert [(b["sent"], b["failed"]) for b in history] == [(1, 1), (2, 0)]
    assert reload(campaign).status == "completed"


def test_one_window_of_outcomes_for_two_campaigns_completes_only_the_finished_one(
    db, clock, make_list, make_campaign, stub_broker
):
    # Given two campaigns whose first batches are queued: one takes its only contacts, the
    # other leaves contacts pending for tomorrow
    done_soon = make_campaign(make_list(2, name="small"), start_at=T0.isoformat())
    more_to_come = make_campaign(
        make_list(3, name="large"), daily_send_limit=2, start_at=T0.isoformat()
    )
    tick(clock.now())
    run_batch(done_soon.id, 1)
    run_batch(more_to_come.id, 1)
    # When all four sends go out in one window, their outcomes recorded together
    ids = [row.id for row in OutboxMessage.select().order_by(OutboxMessage.id)]
    assert len(ids) == 4
    outcomes = delivery.deliver_many(ids)
    assert set(outcomes.values()) == {delivery.Outcome.SENT}
    # Then each recipient has its own outcome, and only the campaign with nobody left completes
    assert recipients_by_status(done_soon) == {"sent": 2}
    assert recipients_by_status(more_to_come) == {"sent": 2, "pending": 1}
    assert reload(done_soon).status == "completed"
    assert reload(more_to_come).status == "running"
    # And the same outcomes reported again change nothing
    notify_outcomes(list(OutboxMessage.select()))
    assert recipients_by_status(more_to_come) == {"sent": 2, "pending": 1}


def test_an_unknown_outcome_is_recorded_as_failed_with_that_reason(
    db, clock, make_list, make_campaign, stub_broker
):
    campaign = make_campaign(make_list(1), start_at=T0.isoformat())
    tick(clock.now())
    run_batch(campaign.id, 1)
    # Given a send that died mid-way (the row stayed `sending`)
    row = OutboxMessage.get()
    OutboxMessage.update(status="sending", claimed_at=T0, attempts=1).execute()
    clock.set(T0 + timedelta(hours=1))
    # When a later delivery finds it
    assert delivery.deliver(row.id) is delivery.Outcome.UNKNOWN
    # Then the recipient is failed as "outcome unknown" and the campaign can complete
    recipient = CampaignRecipient.get()
    assert recipient.status == "failed"
    assert recipient.error.startswith("outcome unknown")
    assert reload(campaign).status == "completed"


def test_a_contact_without_an_address_for_the_channel_is_failed_and_counted(
    db, clock, make_list, make_campaign
):
    # Given an email campaign where one contact has no email address
    contact_list = make_list(2)
    make_list(1, name=contact_list.name, start=3, email=None)
    campaign = make_campaign(contact_list, channel="email", start_at=T0.isoformat())
    # When its batch runs (no delivery needed to see the address problem)
    tick(clock.now())
    run_batch(campaign.id, 1)
    # Then that contact is failed with a clear reason, and counted in the batch
    failed = CampaignRecipient.get(CampaignRecipient.status == "failed")
    assert failed.error == "contact has no email address for the email channel"
    assert campaign_status(campaign.id)["batches"][0]["failed"] == 1
    assert batch_rows(campaign)[0].selected == 3
    assert OutboxMessage.select().count() == 2
    assert {r.recipient for r in OutboxMessage.select()} == {
        "contact1@example.com",
        "contact2@example.com",
    }


def test_contacts_added_after_the_start_are_not_included(
    db, clock, make_list, make_campaign, run_due
):
    # Given a campaign that started on a list of 3 contacts
    contact_list = make_list(3)
    campaign = make_campaign(contact_list, daily_send_limit=2, start_at=T0.isoformat())
    run_due()
    # When two more contacts join the list after the start
    make_list(2, name=contact_list.name, start=4)
    clock.set(T0 + DAY)
    run_due()
    # Then only the first three were messaged, and the campaign is complete
    assert len(outbox_keys()) == 3
    assert reload(campaign).status == "completed"
    assert reload(campaign).recipients_total == 3


def test_a_running_campaign_with_no_recipients_yet_initialises_them_when_a_batch_is_due(
    db, clock, make_list, make_campaign, run_due
):
    # Given a campaign already running before recipients existed (seed 002's compatibility)
    campaign = make_campaign(make_list(4), daily_send_limit=3)
    Campaign.update(status="running", started_at=T0 - DAY, next_batch_at=T0).where(
        Campaign.id == campaign.id
    ).execute()
    assert CampaignRecipient.select().count() == 0
    # When its batch comes due
    run_due()
    # Then its recipients are made from the list, and the batch takes the first three
    assert reload(campaign).recipients_total == 4
    assert recipients_by_status(campaign) == {"sent": 3, "pending": 1}


def test_a_tick_while_the_last_sends_are_in_flight_records_no_batch_then_the_campaign_completes(
    db, clock, make_list, make_campaign, stub_broker, stub_worker, monkeypatch
):
    # Given a channel that holds every send open until it is released
    entered, release = threading.Event(), threading.Event()

    class Holding:
        name = "log"
        deduplicates = False

        def send(self, message: Outbound) -> str:
            entered.set()
            assert release.wait(timeout=30), "the held send was never released"
            return "ok"

    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: Holding())
    # And a campaign whose first batch takes every contact, its sends now in flight
    campaign = make_campaign(make_list(3), daily_send_limit=5, start_at=T0.isoformat())
    assert tick(clock.now())["enqueued"] == 1
    stub_broker.join("campaign", fail_fast=False)
    assert entered.wait(timeout=30)
    try:
        # When the next day's tick comes while those sends are still held open
        clock.set(T0 + DAY + timedelta(minutes=3))
        assert tick(clock.now())["enqueued"] == 1
        stub_broker.join("campaign", fail_fast=False)
        # Then no batch is recorded for it, and the campaign waits, still running
        assert [b.number for b in batch_rows(campaign)] == [1]
        assert reload(campaign).status == "running"
        assert "pending" not in recipients_by_status(campaign)
    finally:
        # When the held sends end
        release.set()
    join_deliveries(stub_broker)
    # Then the campaign completes, its history one batch of three
    assert reload(campaign).status == "completed"
    assert [(b.number, b.selected) for b in batch_rows(campaign)] == [(1, 3)]
    assert recipients_by_status(campaign) == {"sent": 3}


def test_a_tick_after_every_recipient_has_its_outcome_completes_without_a_batch(
    db, clock, make_list, make_campaign, stub_broker
):
    # Given a campaign whose only batch was sent and whose outcomes are all in, left running
    # (its last outcome saw a recipient still pending in the instant before it was claimed)
    campaign = make_campaign(make_list(2), daily_send_limit=5, start_at=T0.isoformat())
    tick(clock.now())
    run_batch(campaign.id, 1)
    deliver_queued()
    Campaign.update(status="running", completed_at=None).where(Campaign.id == campaign.id).execute()
    # When its next batch is claimed and run
    clock.set(T0 + DAY)
    assert claim_batch(campaign.id, 2, T0 + DAY)
    result = run_batch(campaign.id, 2)
    # Then no batch 2 is recorded and the campaign is completed
    assert result.outcome is BatchOutcome.NOTHING_LEFT
    assert [b.number for b in batch_rows(campaign)] == [1]
    assert reload(campaign).status == "completed"
