"""A page of matched ads in a few statements: each statement's race, and refusals that cost
only themselves (two workers on the same hunt, a redelivered hunt message, another hunt of the
account or an operator getting there between the matching and the writes)."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest

from storage import clock as clock_module
from storage.db import database, write_transaction
from storage.models import ContactedAd, Lead, OutboxMessage
from storage.models.hunts import NOUVEAU
from tests.hunts.conftest import definition
from tests.lanes import delivery_messages
from worker.hunts import credits, pacing, process
from worker.hunts.definition import create_hunt
from worker.hunts.process import run_hunt

DAY = date(2026, 3, 2)


def _at_once(threads: int, work) -> list:
    """Run `work()` on `threads` threads released together; their results, errors raised."""
    barrier = threading.Barrier(threads)
    results: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with database.connection_context():
                barrier.wait()
                results.append(work())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert errors == []
    return results


def test_slots_taken_a_page_at_a_time_by_many_workers_never_pass_the_limit(db, clock, make_hunt):
    # Given a limit of 5 and eight workers each asking for 3 slots of the day at once (the
    # first of them also creates the day's counter)
    hunt = make_hunt(daily_pacing_limit=5)

    def take() -> int:
        with write_transaction():
            return pacing.take_many(hunt.id, DAY, 3, limit=5)

    taken = _at_once(8, take)
    # Then 5 slots were handed out in all, and the counter says 5
    assert sum(taken) == 5, taken
    assert pacing.get_count(hunt.id, DAY) == 5


def test_a_page_asking_for_more_slots_than_are_left_gets_what_is_left(db, clock, make_hunt):
    hunt = make_hunt(daily_pacing_limit=5)
    assert pacing.take_many(hunt.id, DAY, 3, limit=5) == 3
    assert pacing.take_many(hunt.id, DAY, 3, limit=5) == 2
    assert pacing.take_many(hunt.id, DAY, 3, limit=5) == 0
    assert pacing.get_count(hunt.id, DAY) == 5
    # No limit: every slot asked for
    assert pacing.take_many(hunt.id, DAY, 7) == 7


def test_credits_reserved_a_page_at_a_time_by_many_workers_never_pass_the_allocation(
    db, clock, make_hunt
):
    hunt = make_hunt(credits={"whatsapp": 10})

    def reserve() -> int:
        with write_transaction():
            return credits.reserve_many(hunt.id, "whatsapp", 4)

    held = _at_once(6, reserve)
    assert sum(held) == 10, held
    assert credits.available(hunt.id) == {"whatsapp": 0}
    assert credits.reserve_many(hunt.id, "whatsapp", 1) == 0


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_two_workers_on_the_same_hunt_page_contact_each_ad_once_within_the_limit(
    db, clock, make_ads, make_hunt
):
    # Given 30 matching ads, a limit of 12 and 20 credits, and the same hunt message on two
    # workers at the same moment, two days running
    make_ads(30)
    hunt = make_hunt(daily_pacing_limit=12, credits={"whatsapp": 20})
    # Then on the first day the 12 were contacted between the two runs; on the second the 8
    # credits left were (12 slots asked for, 8 held, 4 given back)
    for day, expected in enumerate([12, 8]):
        if day:
            clock.advance(timedelta(days=1))
        results = _at_once(2, lambda: run_hunt(hunt.id))
        assert sum(r["contacted"] for r in results) == expected, results
        assert pacing.today(hunt.id)[1] == {"*": expected, "whatsapp": expected}
    # And each of the 20 ads contacted is one lead, one claim, one contact
    assert ContactedAd.select().count() == Lead.select().count() == 20
    assert OutboxMessage.select().count() == 20
    assert len({c.ad_id for c in ContactedAd.select()}) == 20
    assert credits.available(hunt.id) == {"whatsapp": 0}


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_two_hunts_of_an_account_racing_for_the_same_ads_each_pay_only_for_their_contacts(
    db, clock, make_ads, make_hunt
):
    # Given two hunts of one account matching the same 10 ads, run at the same moment
    make_ads(10)
    first = make_hunt(daily_pacing_limit=None, credits={"whatsapp": 10})
    second = make_hunt(daily_pacing_limit=None, credits={"whatsapp": 10}, name="Twin")
    results = dict(
        zip(
            (first.id, second.id),
            _at_once_each([lambda: run_hunt(first.id), lambda: run_hunt(second.id)]),
            strict=True,
        )
    )
    # Then each ad became one lead of the account, contacted once, by one of the hunts
    assert Lead.select().count() == ContactedAd.select().count() == 10
    assert results[first.id]["contacted"] + results[second.id]["contacted"] == 10
    # And each hunt's slots and credits are exactly its own contacts
    for hunt in (first, second):
        contacted = results[hunt.id]["contacted"]
        assert pacing.today(hunt.id)[1]["*"] == contacted
        assert credits.available(hunt.id) == {"whatsapp": 10 - contacted}


def _at_once_each(works: list) -> list:
    barrier = threading.Barrier(len(works))
    results: list = [None] * len(works)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            with database.connection_context():
                barrier.wait()
                results[n] = works[n]()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(works))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_a_redelivered_hunt_message_contacts_nobody_twice_and_takes_nothing_more(
    db, clock, stub_broker, make_ads, make_hunt
):
    # Given a run that contacted the day's 3 (its message then delivered again: a worker died
    # before the acknowledgement)
    make_ads(5)
    hunt = make_hunt(daily_pacing_limit=3, credits={"whatsapp": 10})
    assert run_hunt(hunt.id)["contacted"] == 3
    deliveries = len(delivery_messages(stub_broker))
    # When the same message runs again
    again = run_hunt(hunt.id)
    # Then it stops at the limit: no lead, claim, credit or delivery more
    assert (again["contacted"], again["stopped"]) == (0, "pacing_limit")
    assert OutboxMessage.select().count() == 3
    assert credits.available(hunt.id) == {"whatsapp": 7}
    assert pacing.today(hunt.id)[1] == {"*": 3, "whatsapp": 3}
    assert len(delivery_messages(stub_broker)) == deliveries


def test_an_ad_taken_by_another_hunt_meanwhile_gives_back_its_slot_and_credit(
    db, clock, make_ads, make_hunt, owner, monkeypatch
):
    # Given 3 matching ads; between this run's matching and its writes, another hunt of the
    # account makes the newest one its lead
    ids = make_ads(3)
    hunt = make_hunt(daily_pacing_limit=3, credits={"whatsapp": 10})
    other = create_hunt(definition(owner, name="Other"))
    real_find = process.find_matches

    def find_then_lose_one(*args, **kwargs):
        found = real_find(*args, **kwargs)
        if found:
            now = clock_module.now()
            Lead.create(
                account=hunt.account_id,
                hunt=other.id,
                ad=ids[0],
                stage=NOUVEAU,
                created_at=now,
                updated_at=now,
            )
        return found

    monkeypatch.setattr(process, "find_matches", find_then_lose_one)
    result = run_hunt(hunt.id)
    # Then the two others are contacted; the lost one costs no slot and no credit
    assert result["contacted"] == 2
    assert result["skipped"] == {"already_lead": 1}
    assert sorted(c.ad_id for c in ContactedAd.select()) == sorted(ids[1:])
    assert pacing.today(hunt.id)[1] == {"*": 2, "whatsapp": 2}
    assert credits.available(hunt.id) == {"whatsapp": 8}
    assert Lead.get(Lead.ad == ids[0]).hunt_id == other.id


def test_an_ad_whose_lead_was_deleted_is_not_contacted_again_and_costs_nothing(
    db, clock, make_ads, make_hunt
):
    # Given a contacted ad whose lead an operator deleted afterwards
    ids = make_ads(2)
    hunt = make_hunt(daily_pacing_limit=None, credits={"whatsapp": 10})
    assert run_hunt(hunt.id)["contacted"] == 2
    Lead.delete().where(Lead.ad == ids[0]).execute()
    # When the hunt runs again, and a new ad has come
    new = make_ads(1, start=3)
    result = run_hunt(hunt.id)
    # Then only the new ad is contacted: the old key is spent, no lead comes back for it, and
    # its refusal holds no credit and no slot
    assert result["contacted"] == 1
    assert result["skipped"] == {"already_queued": 1}
    assert not Lead.select().where(Lead.ad == ids[0]).exists()
    assert sorted(c.ad_id for c in ContactedAd.select()) == sorted([*ids, *new])
    assert credits.available(hunt.id) == {"whatsapp": 7}
    assert pacing.today(hunt.id)[1] == {"*": 3, "whatsapp": 3}


def test_a_page_of_ten_contacts_is_a_few_statements(db, clock, make_ads, make_hunt, monkeypatch):
    # Given a hunt whose page is 10 new ads
    make_ads(10)
    hunt = make_hunt(daily_pacing_limit=10, credits={"whatsapp": 100})
    statements: list[str] = []
    real = database.execute_sql

    def counted(sql, params=None, *args, **kwargs):
        statements.append(sql.split(" ", 1)[0].upper())
        return real(sql, params, *args, **kwargs)

    monkeypatch.setattr(database.obj, "execute_sql", counted)
    assert run_hunt(hunt.id)["contacted"] == 10
    monkeypatch.undo()
    # Then the page's writes are a handful of statements, not a dozen per contact
    writes = [s for s in statements if s in ("INSERT", "UPDATE", "DELETE")]
    assert len(writes) <= 8, statements
