"""The batch limit and "never twice" hold when a batch message is delivered twice, at once, or
again after a crash, and when scheduler ticks race or repeat (design invariants 1 and 4)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest

from producers.campaigns import STALE_BATCH_AFTER, tick
from storage.db import database
from storage.models import CampaignBatch, CampaignRecipient, Contact, OutboxMessage
from tests.campaigns.helpers import outbox_keys, recipients_by_status, reload
from tests.conftest import T0
from worker.campaigns import batches
from worker.campaigns.batches import BatchOutcome, run_batch


class WorkerKilled(BaseException):
    """Stands for the process dying: not an Exception, nothing catches it on the way out."""


def first_keys(campaign, contact_list, n: int) -> list[str]:
    ids = [
        c.id
        for c in Contact.select(Contact.id)
        .where(Contact.contact_list == contact_list.id)
        .order_by(Contact.id)
        .limit(n)
    ]
    return [f"campaign:{campaign.id}:contact:{cid}" for cid in ids]


def test_a_batch_redelivered_after_a_crash_mid_way_carries_on_without_repeats_or_gaps(
    db, clock, make_list, make_campaign, monkeypatch
):
    # Given a batch of 7 out of 20 contacts, worked 2 at a time
    monkeypatch.setattr(batches, "BATCH_CHUNK", 2)
    contact_list = make_list(20)
    campaign = make_campaign(contact_list, daily_send_limit=7, start_at=T0.isoformat())
    tick(clock.now())
    real_queue_messages = batches.queue_messages
    calls = {"n": 0}

    def dies_on_the_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise WorkerKilled
        return real_queue_messages(*args, **kwargs)

    monkeypatch.setattr(batches, "queue_messages", dies_on_the_third_chunk)
    # When the worker dies in the middle of the third chunk
    with pytest.raises(WorkerKilled):
        run_batch(campaign.id, 1)
    assert len(outbox_keys()) == 4  # two chunks committed; the third rolled back
    assert recipients_by_status(campaign) == {"queued": 4, "pending": 16}
    # And the same batch message is delivered again
    monkeypatch.setattr(batches, "queue_messages", real_queue_messages)
    result = run_batch(campaign.id, 1)
    # Then the batch carried on: 7 in all, the first 7 contacts in order, none twice
    assert result.outcome is BatchOutcome.DONE
    assert outbox_keys() == first_keys(campaign, contact_list, 7)
    batch = CampaignBatch.get()
    assert batch.selected == 7
    assert batch.remaining == 13
    assert reload(campaign).current_batch_number == 1
    # And one more delivery of it changes nothing
    assert run_batch(campaign.id, 1).outcome is BatchOutcome.ALREADY_DONE
    assert len(outbox_keys()) == 7


def test_a_crash_after_the_last_chunk_but_before_the_batch_was_recorded_sends_nothing_more(
    db, clock, make_list, make_campaign, monkeypatch
):
    # Given a batch whose every chunk committed, but the worker died before recording it done
    campaign = make_campaign(make_list(10), daily_send_limit=4, start_at=T0.isoformat())
    tick(clock.now())

    def dies(*args, **kwargs):
        raise WorkerKilled

    real_finish = batches._finish
    monkeypatch.setattr(batches, "_finish", dies)
    with pytest.raises(WorkerKilled):
        run_batch(campaign.id, 1)
    monkeypatch.setattr(batches, "_finish", real_finish)
    # When it is delivered again (say, after a restart of every process)
    assert run_batch(campaign.id, 1).outcome is BatchOutcome.DONE
    # Then the limit held and the batch is recorded
    assert len(outbox_keys()) == 4
    assert CampaignBatch.get().finished_at == T0


def test_the_same_batch_from_several_threads_at_once_never_exceeds_the_limit(
    db, clock, make_list, make_campaign, monkeypatch
):
    # Given a batch of 9 out of 30 contacts, worked 2 at a time by four deliveries at once
    monkeypatch.setattr(batches, "BATCH_CHUNK", 2)
    contact_list = make_list(30)
    campaign = make_campaign(contact_list, daily_send_limit=9, start_at=T0.isoformat())
    tick(clock.now())
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def deliver_batch() -> None:
        try:
            with database.connection_context():
                barrier.wait()
                run_batch(campaign.id, 1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver_batch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then exactly 9 messages, to the first 9 contacts, none twice
    assert errors == []
    keys = outbox_keys()
    assert sorted(keys) == sorted(first_keys(campaign, contact_list, 9))
    assert max(Counter(keys).values()) == 1
    assert CampaignBatch.get().selected == 9
    assert recipients_by_status(campaign) == {"queued": 9, "pending": 21}


def test_ticks_racing_enqueue_one_message_per_campaign_batch(
    db, clock, make_list, make_campaign, stub_broker
):
    # Given three campaigns due now
    campaigns = [
        make_campaign(make_list(3, name=f"list-{i}", start=10 * i), start_at=T0.isoformat())
        for i in range(3)
    ]
    barrier = threading.Barrier(4)
    results: list[dict] = []
    errors: list[BaseException] = []

    def fire() -> None:
        try:
            with database.connection_context():
                barrier.wait()
                results.append(tick(T0))
        except BaseException as exc:
            errors.append(exc)

    # When four schedulers tick at the same moment
    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then one batch message per campaign is on the broker, and one batch row each
    assert errors == []
    assert sum(r["enqueued"] for r in results) == 3
    assert len(stub_broker.queues["campaign"].queue) == 3
    assert sorted(b.campaign_id for b in CampaignBatch.select()) == sorted(c.id for c in campaigns)


def test_a_repeated_tick_or_a_tick_while_the_batch_waits_enqueues_nothing_more(
    db, clock, make_list, make_campaign, stub_broker
):
    make_campaign(make_list(3), start_at=T0.isoformat())
    assert tick(T0)["enqueued"] == 1
    # The same fire time again, then five minutes later with the message still waiting
    assert tick(T0)["enqueued"] == 0
    clock.set(T0 + timedelta(minutes=5))
    assert tick(clock.now())["enqueued"] == 0
    assert len(stub_broker.queues["campaign"].queue) == 1


def test_a_batch_whose_message_was_lost_is_enqueued_again_later(
    db, clock, make_list, make_campaign, stub_broker
):
    # Given a batch claimed and enqueued, whose message Redis then lost
    campaign = make_campaign(make_list(3), start_at=T0.isoformat())
    tick(T0)
    stub_broker.flush("campaign")
    # When the scheduler ticks before and after the stale delay
    clock.set(T0 + STALE_BATCH_AFTER - timedelta(seconds=1))
    assert tick(clock.now())["requeued"] == 0
    clock.set(T0 + STALE_BATCH_AFTER + timedelta(seconds=1))
    assert tick(clock.now())["requeued"] == 1
    # Then the batch is back on the broker, once, and runs
    assert len(stub_broker.queues["campaign"].queue) == 1
    assert tick(clock.now())["requeued"] == 0
    assert run_batch(campaign.id, 1).outcome is BatchOutcome.DONE
    assert len(outbox_keys()) == 3


def test_the_last_two_outcomes_arriving_together_complete_the_campaign_once(
    db, clock, make_list, make_campaign
):
    from worker.delivery import deliver

    # Given a campaign whose two last messages are delivered by two threads at once
    campaign = make_campaign(make_list(2), daily_send_limit=2, start_at=T0.isoformat())
    tick(T0)
    run_batch(campaign.id, 1)
    ids = [r.id for r in OutboxMessage.select()]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def send(outbox_id: int) -> None:
        try:
            with database.connection_context():
                barrier.wait()
                deliver(outbox_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then both are recorded and the campaign is completed
    assert errors == []
    assert recipients_by_status(campaign) == {"sent": 2}
    assert reload(campaign).status == "completed"
    assert CampaignRecipient.select().where(CampaignRecipient.status == "queued").count() == 0


def test_the_tick_completes_a_running_campaign_left_with_nothing_outstanding(
    db, clock, make_list, make_campaign
):
    # Given a campaign whose every recipient is done, but whose completion was missed
    campaign = make_campaign(make_list(2), daily_send_limit=2, start_at=T0.isoformat())
    tick(T0)
    run_batch(campaign.id, 1)
    CampaignRecipient.update(status="sent").execute()
    assert reload(campaign).status == "running"
    # When the scheduler ticks
    assert tick(clock.now())["completed"] == 1
    # Then it is completed, once
    assert reload(campaign).status == "completed"
    assert tick(clock.now())["completed"] == 0
