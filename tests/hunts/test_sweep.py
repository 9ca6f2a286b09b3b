"""The daily sweep: one message per active auto-refresh hunt and account-local day, claimed
before it is enqueued; one failing hunt does not stop the others."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from producers.hunts import enqueue_hunt, sweep
from storage.errors import InvalidState, NotFound
from storage.models import Account, Hunt, HuntPacing, HuntRun, OutboxMessage, User
from tests.hunts.conftest import at_paris, definition
from tests.lanes import join_deliveries
from worker.hunts import pacing
from worker.hunts.definition import create_hunt


def hunt_messages(broker) -> list[list[int]]:
    return [json.loads(m)["args"] for m in broker.queues.get("hunt", _Empty()).queue]


class _Empty:
    queue: list = []


def test_one_message_per_active_auto_refresh_hunt(db, clock, stub_broker, make_hunt):
    # Given an active hunt, a paused one, and one that is not refreshed automatically
    active = make_hunt()
    make_hunt(status="paused")
    make_hunt(auto_refresh=False)
    # When the sweep fires
    result = sweep(clock.now())
    # Then one message, with only the hunt's and the run's ids, is enqueued
    assert result["hunts"] == 1 and result["enqueued"] == 1
    run = HuntRun.get()
    assert (run.hunt_id, run.day.isoformat()) == (active.id, "2026-03-02")
    assert hunt_messages(stub_broker) == [[active.id, run.id]]


def test_a_second_sweep_the_same_day_enqueues_nothing(db, clock, stub_broker, make_hunt):
    make_hunt()
    sweep(clock.now())
    # Fired again later the same day (or by a second scheduler)
    clock.advance(timedelta(minutes=5))
    again = sweep(clock.now())
    assert again["enqueued"] == 0 and again["already_claimed"] == 1
    assert len(hunt_messages(stub_broker)) == 1
    # The next day is a new run
    clock.advance(timedelta(days=1))
    assert sweep(clock.now())["enqueued"] == 1
    assert HuntRun.select().count() == 2


def test_the_day_is_each_accounts_own(db, clock, stub_broker, owner):
    # Given a hunt in Paris and one in Los Angeles
    paris = create_hunt(definition(owner))
    la_account = Account.create(name="LA", timezone="America/Los_Angeles", created_at=clock.now())
    la_owner = User.create(account=la_account, name="Ann", created_at=clock.now())
    la = create_hunt(definition(la_owner))
    # When the sweep fires at 00:30 in Paris on March 3rd (15:30 on March 2nd in Los Angeles)
    sweep(at_paris(2026, 3, 3, 0, 30))
    days = {run.hunt_id: run.day.isoformat() for run in HuntRun.select()}
    assert days == {paris.id: "2026-03-03", la.id: "2026-03-02"}
    # And a fire two hours later is still the same day for both: nothing new
    assert sweep(at_paris(2026, 3, 3, 2, 30))["enqueued"] == 0


def test_a_run_whose_message_was_lost_is_enqueued_again(db, clock, stub_broker, make_hunt):
    # Given a run claimed this morning whose message never ran (Redis lost it)
    make_hunt()
    sweep(clock.now())
    stub_broker.flush_all()
    # When the sweep fires again within the relay window, nothing; after it, once
    clock.advance(timedelta(minutes=5))
    assert sweep(clock.now())["requeued"] == 0
    clock.advance(timedelta(hours=1))
    assert sweep(clock.now())["requeued"] == 1
    assert sweep(clock.now())["requeued"] == 0
    assert len(hunt_messages(stub_broker)) == 1


def test_a_failing_hunt_does_not_stop_the_others(
    db, clock, stub_broker, stub_worker, make_ads, make_hunt
):
    # Given three hunts, the second with criteria broken in the database
    make_ads(3)
    first = make_hunt(channels=["log"], credits={"log": 5}, daily_pacing_limit=1)
    broken = make_hunt(name="broken", channels=["log"], credits={"log": 5})
    Hunt.update(criteria={"colour": "red"}).where(Hunt.id == broken.id).execute()
    third = make_hunt(name="third", channels=["log"], credits={"log": 5}, daily_pacing_limit=1)
    # When the sweep runs them all
    sweep(clock.now())
    stub_broker.join("hunt", fail_fast=False)
    join_deliveries(stub_broker)
    stub_worker.join()
    # Then the others contacted their ad and it was sent
    runs = {run.hunt_id: run for run in HuntRun.select()}
    assert runs[first.id].contacted == 1 and runs[third.id].contacted == 1
    assert OutboxMessage.select().where(OutboxMessage.status == "sent").count() == 2
    # And the broken one is recorded, not finished, with its reason, and dead-lettered
    assert runs[broken.id].finished_at is None
    assert "unknown key 'colour'" in runs[broken.id].error
    assert len(stub_broker.dead_letters) == 1


def test_enqueue_hunt_puts_one_message_on_the_hunt_queue(db, clock, stub_broker, make_hunt):
    hunt = make_hunt()
    result = enqueue_hunt(hunt.id)
    assert result["hunt_id"] == hunt.id and result["queue"] == "hunt"
    assert hunt_messages(stub_broker) == [[hunt.id]]


def test_enqueue_hunt_refuses_unknown_and_inactive_hunts(db, clock, stub_broker, make_hunt):
    paused = make_hunt(status="paused")
    with pytest.raises(NotFound, match="hunt 999"):
        enqueue_hunt(999)
    with pytest.raises(InvalidState, match="paused"):
        enqueue_hunt(paused.id)
    assert hunt_messages(stub_broker) == []


def test_the_sweep_forgets_pacing_counters_older_than_a_week(db, clock, stub_broker, make_hunt):
    # Given a hunt's pacing counters for today, six days ago and eight days ago
    hunt = make_hunt()
    today = clock.now().date()
    for age in (0, 6, 8):
        pacing.ensure_rows(hunt.id, today - timedelta(days=age), ["log"])
    # When the daily sweep fires
    result = sweep(clock.now())
    # Then only the counters of more than a week ago are gone
    assert result["pacing_rows_deleted"] == 2  # the day's row for all channels, and for `log`
    days = sorted({row.day for row in HuntPacing.select()})
    assert days == [today - timedelta(days=6), today]
    # And a failed send's slot given back for that forgotten day changes nothing
    pacing.release(hunt.id, "log", today - timedelta(days=8))
    assert HuntPacing.select().where(HuntPacing.day < today - timedelta(days=7)).count() == 0
