"""Running by hand, pausing, resuming and cancelling; refused moves change nothing."""

from __future__ import annotations

from datetime import timedelta

import dramatiq
import pytest
from playhouse.shortcuts import model_to_dict

from producers.campaigns import enqueue_batch, enqueue_if_due, tick
from storage.errors import InvalidState, NotFound, PermissionDenied
from storage.models import Campaign, CampaignBatch, OutboxMessage
from tests.campaigns.helpers import batch_rows, outbox_keys, recipients_by_status, reload
from tests.conftest import T0
from tests.lanes import join_deliveries
from worker.campaigns import batches
from worker.campaigns.control import cancel, pause, resume, run_manually

DAY = timedelta(days=1)


@pytest.fixture
def work(stub_broker):
    """Every batch and delivery waiting on the in-process broker, processed by a worker that
    runs only then (so a test decides what happens before the worker sees a message)."""

    def run() -> None:
        worker = dramatiq.Worker(stub_broker, worker_timeout=50, worker_threads=4)
        worker.start()
        try:
            stub_broker.join("campaign", fail_fast=False)
            join_deliveries(stub_broker)
        finally:
            worker.stop()

    return run


def snapshot(campaign: Campaign) -> dict:
    return model_to_dict(reload(campaign), recurse=False)


def test_run_by_hand_starts_a_draft_now_and_sends_the_first_batch(
    db, clock, owner, make_list, make_campaign, work
):
    # Given a draft campaign of 8 contacts with a limit of 5
    campaign = make_campaign(make_list(8))
    assert campaign.status == "draft"
    # When its owner runs it by hand
    started = run_manually(campaign.id, owner.id)
    assert enqueue_if_due(campaign.id) == 1
    work()
    # Then it is running, its first batch went now, and the next is due in 24 h
    assert started.status == "running"
    current = reload(campaign)
    assert current.started_at == T0
    assert current.first_batch_sent_at == T0
    assert current.next_batch_at == T0 + DAY
    assert recipients_by_status(campaign) == {"sent": 5, "pending": 3}
    assert batch_rows(campaign)[0].scheduled_at == T0


@pytest.mark.parametrize("status", ["running", "completed", "failed", "cancelled", "paused"])
def test_run_by_hand_is_refused_in_the_wrong_state_and_changes_nothing(
    db, clock, owner, make_list, make_campaign, status
):
    campaign = make_campaign(make_list(3))
    Campaign.update(status=status).where(Campaign.id == campaign.id).execute()
    before = snapshot(campaign)
    with pytest.raises(InvalidState, match=f"cannot run campaign {campaign.id}"):
        run_manually(campaign.id, owner.id)
    assert snapshot(campaign) == before
    assert CampaignBatch.select().count() == 0


def test_moves_by_a_user_who_does_not_own_the_campaign_are_refused_and_change_nothing(
    db, clock, stranger, make_list, make_campaign
):
    campaign = make_campaign(make_list(3), start_at=T0.isoformat())
    before = snapshot(campaign)
    for move in (run_manually, pause, cancel):
        with pytest.raises(PermissionDenied, match=f"does not own campaign {campaign.id}"):
            move(campaign.id, stranger.id)
    assert snapshot(campaign) == before


def test_unknown_campaigns_and_users_are_refused(db, clock, owner, make_list, make_campaign):
    campaign = make_campaign(make_list(1))
    before = snapshot(campaign)
    with pytest.raises(NotFound, match="campaign 999 does not exist"):
        run_manually(999, owner.id)
    with pytest.raises(NotFound, match="user 999 does not exist"):
        run_manually(campaign.id, 999)
    assert snapshot(campaign) == before


def test_pause_stops_the_next_batch_and_resume_continues_from_where_it_stopped(
    db, clock, make_list, make_campaign, work
):
    # Given a campaign of 12 contacts, limit 5, whose first batch went on day 1
    contact_list = make_list(12)
    campaign = make_campaign(contact_list, start_at=T0.isoformat())
    tick(T0)
    work()
    # When it is paused and day 2 comes
    assert pause(campaign.id).status == "paused"
    clock.set(T0 + DAY)
    # Then no batch is enqueued
    assert tick(clock.now())["enqueued"] == 0
    work()
    assert recipients_by_status(campaign) == {"sent": 5, "pending": 7}
    # When it is resumed on day 3 at 15:00 (its day-2 batch overdue)
    clock.set(T0 + 2 * DAY + timedelta(hours=6))
    resumed = resume(campaign.id)
    assert resumed.status == "running"
    assert resumed.next_batch_at == clock.now()
    assert enqueue_if_due(campaign.id) == 2
    work()
    # Then the next five contacts in order are sent, and the next batch is 24 h later
    keys = outbox_keys()
    assert len(keys) == 10 and len(set(keys)) == 10
    assert recipients_by_status(campaign) == {"sent": 10, "pending": 2}
    assert reload(campaign).next_batch_at == clock.now() + DAY


def test_pausing_before_a_waiting_batch_runs_skips_it_and_resume_schedules_it_again(
    db, clock, make_list, make_campaign, work
):
    # Given a batch message waiting on the broker
    campaign = make_campaign(make_list(6), start_at=T0.isoformat())
    tick(T0)
    # When the campaign is paused before the worker gets to it
    pause(campaign.id)
    work()
    # Then it sent nothing, and its batch row was dropped
    assert OutboxMessage.select().count() == 0
    assert CampaignBatch.select().count() == 0
    # And after a resume, the next tick runs it (a campaign paused before starting waits again)
    assert resume(campaign.id).status == "scheduled"
    assert tick(clock.now())["enqueued"] == 1
    work()
    assert recipients_by_status(campaign) == {"sent": 5, "pending": 1}


def test_a_pause_mid_batch_stops_after_the_chunk_and_resume_finishes_the_same_batch(
    db, clock, make_list, make_campaign, work, monkeypatch
):
    # Given a batch of 5 worked 2 at a time, paused while its first chunk is queued
    monkeypatch.setattr(batches, "BATCH_CHUNK", 2)
    campaign = make_campaign(make_list(9), start_at=T0.isoformat())
    real_queue_messages = batches.queue_messages

    def pausing(*args, **kwargs):
        Campaign.update(status="paused").where(Campaign.id == campaign.id).execute()
        return real_queue_messages(*args, **kwargs)

    monkeypatch.setattr(batches, "queue_messages", pausing)
    tick(T0)
    work()
    assert recipients_by_status(campaign) == {"sent": 2, "pending": 7}
    # When it is resumed
    monkeypatch.setattr(batches, "queue_messages", real_queue_messages)
    resume(campaign.id)
    assert enqueue_if_due(campaign.id) == 1  # the unfinished batch, again
    work()
    # Then the same batch finishes at its limit of 5, not 5 more
    assert recipients_by_status(campaign) == {"sent": 5, "pending": 4}
    assert [b.selected for b in batch_rows(campaign)] == [5]


def test_cancel_ends_the_campaign_and_queued_messages_are_still_recorded(
    db, clock, make_list, make_campaign, stub_broker, work
):
    # Given a campaign whose first batch is queued but not delivered yet
    campaign = make_campaign(make_list(8), start_at=T0.isoformat())
    tick(T0)
    batches.run_batch(campaign.id, 1)
    stub_broker.flush("campaign")
    # When it is cancelled
    cancelled = cancel(campaign.id)
    assert cancelled.status == "cancelled"
    assert cancelled.next_batch_at is None
    # Then what was queued is still delivered and recorded, and nothing more is sent
    work()
    clock.set(T0 + DAY)
    assert tick(clock.now())["enqueued"] == 0
    assert recipients_by_status(campaign) == {"sent": 5, "pending": 3}
    assert reload(campaign).status == "cancelled"
    # And it cannot be run, resumed or paused again
    for move in (resume, pause, cancel):
        with pytest.raises(InvalidState):
            move(campaign.id)


def test_ad_hoc_enqueue_refuses_a_batch_ahead_of_time(db, clock, make_list, make_campaign, work):
    campaign = make_campaign(make_list(8), start_at=(T0 + timedelta(hours=1)).isoformat())
    with pytest.raises(InvalidState, match="no batch is due"):
        enqueue_batch(campaign.id)
    clock.set(T0 + timedelta(hours=1))
    assert enqueue_batch(campaign.id) == {
        "campaign_id": campaign.id,
        "batch_number": 1,
        "enqueued": 1,
    }
    work()
    with pytest.raises(InvalidState, match="no batch is due"):
        enqueue_batch(campaign.id)
    assert len(outbox_keys()) == 5
