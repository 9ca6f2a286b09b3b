"""Daily pacing (seed 000's test strategy, on durable state shared by every worker)."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest

from storage.db import database, is_postgres
from storage.models import Account, HuntPacing
from tests.hunts.conftest import at_paris
from worker.hunts import pacing

DAY = date(2026, 3, 2)


def test_increment_returns_the_new_count_and_get_count_starts_at_zero(db, clock, make_hunt):
    hunt = make_hunt(daily_pacing_limit=None)
    # An unknown hunt or day counts 0
    assert pacing.get_count(hunt.id, DAY) == 0
    assert pacing.get_count(hunt.id + 1000, DAY) == 0
    # Each increment returns the hunt's new count for the day
    assert pacing.increment(hunt.id, "whatsapp", DAY) == 1
    assert pacing.increment(hunt.id, "email", DAY) == 2
    assert pacing.increment(hunt.id, "whatsapp", DAY) == 3
    # Counted per hunt and per channel
    assert pacing.get_count(hunt.id, DAY) == 3
    assert pacing.get_count(hunt.id, DAY, "whatsapp") == 2
    assert pacing.counts_for_day(hunt.id, DAY) == {"*": 3, "whatsapp": 2, "email": 1}
    # Another day is another count
    assert pacing.get_count(hunt.id, DAY + timedelta(days=1)) == 0


def test_is_at_limit_when_the_count_reaches_the_limit_and_increment_refuses(db, clock, make_hunt):
    hunt = make_hunt(daily_pacing_limit=2)
    assert not pacing.is_at_limit(hunt.id, DAY, 2)
    pacing.increment(hunt.id, "whatsapp", DAY, limit=2)
    assert not pacing.is_at_limit(hunt.id, DAY, 2)
    pacing.increment(hunt.id, "whatsapp", DAY, limit=2)
    assert pacing.is_at_limit(hunt.id, DAY, 2)
    # At the limit, increment takes nothing and changes nothing
    assert pacing.increment(hunt.id, "whatsapp", DAY, limit=2) is None
    assert pacing.counts_for_day(hunt.id, DAY) == {"*": 2, "whatsapp": 2}
    assert pacing.remaining(hunt.id, DAY, 2) == 0


def test_a_null_limit_is_never_reached(db, clock, make_hunt):
    hunt = make_hunt(daily_pacing_limit=None)
    for _ in range(5):
        assert pacing.increment(hunt.id, "whatsapp", DAY, limit=None) is not None
    assert pacing.is_at_limit(hunt.id, DAY, None) is False
    assert pacing.remaining(hunt.id, DAY, None) is None


def test_a_zero_limit_allows_nothing(db, clock, make_hunt):
    hunt = make_hunt(daily_pacing_limit=0)
    assert pacing.is_at_limit(hunt.id, DAY, 0)
    assert pacing.increment(hunt.id, "whatsapp", DAY, limit=0) is None
    assert pacing.get_count(hunt.id, DAY) == 0


def test_release_gives_a_slot_back_and_never_goes_below_zero(db, clock, make_hunt):
    hunt = make_hunt()
    pacing.increment(hunt.id, "whatsapp", DAY, limit=1)
    pacing.release(hunt.id, "whatsapp", DAY)
    pacing.release(hunt.id, "whatsapp", DAY)
    assert pacing.counts_for_day(hunt.id, DAY) == {"*": 0, "whatsapp": 0}
    assert pacing.increment(hunt.id, "whatsapp", DAY, limit=1) == 1


def test_the_day_is_the_accounts_day(db, clock, make_hunt, account):
    # Given an account in Paris (UTC+1) with a hunt that contacted its limit at 23:30 Paris time
    hunt = make_hunt(daily_pacing_limit=1)
    clock.set(at_paris(2026, 3, 2, 23, 30))
    day, _ = pacing.today(hunt.id)
    assert day == date(2026, 3, 2)
    assert pacing.increment(hunt.id, "whatsapp", day, limit=1) == 1
    # When it is 23:59 in Paris (22:59 UTC) the day is the same: still at the limit
    clock.set(at_paris(2026, 3, 2, 23, 59))
    assert pacing.today_count(hunt.id) == 1
    # When Paris passes midnight (still 23:00 UTC on the 2nd) the count starts again
    clock.set(at_paris(2026, 3, 3, 0, 0))
    assert clock.now().date() == date(2026, 3, 2)  # UTC has not changed day yet
    assert pacing.today(hunt.id) == (date(2026, 3, 3), {"*": 0})
    # And an account on the other side of the world has its own day at that instant
    Account.update(timezone="America/Los_Angeles").where(Account.id == account.id).execute()
    assert pacing.today(hunt.id)[0] == date(2026, 3, 2)


def _take_at_once(hunt_id: int, day: date, threads: int, limit: int) -> list[int | None]:
    barrier = threading.Barrier(threads)
    taken: list[int | None] = []
    errors: list[BaseException] = []

    def take() -> None:
        try:
            with database.connection_context():
                barrier.wait()
                taken.append(pacing.increment(hunt_id, "whatsapp", day, limit=limit))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=take) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert errors == []
    return taken


def test_many_workers_taking_slots_at_once_never_pass_the_limit(db, clock, make_hunt):
    # Given a hunt with a limit of 5, and on each of three days twelve threads taking slots at
    # the same moment (the day's first slot also creates its counter: a race of its own)
    hunt = make_hunt(daily_pacing_limit=5)
    for offset in range(3):
        day = DAY + timedelta(days=offset)
        taken = _take_at_once(hunt.id, day, threads=12, limit=5)
        # Then exactly five got a slot, numbered 1 to 5, and the stored count is 5
        assert sorted(n for n in taken if n is not None) == [1, 2, 3, 4, 5], taken
        assert taken.count(None) == 7
        assert pacing.get_count(hunt.id, day) == 5
        assert (
            HuntPacing.get(
                HuntPacing.hunt == hunt.id, HuntPacing.day == day, HuntPacing.channel == "*"
            ).count
            == 5
        )


# PostgreSQL only: SQLite runs one writer at a time, so no other worker can create the counter
# while this one is inside its write transaction (it would wait for the lock, then fail).
@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_a_counter_created_by_another_worker_meanwhile_is_used_not_taken_for_the_limit(
    db, clock, make_hunt, monkeypatch
):
    assert is_postgres()
    # Given the day's first slot attempt, which finds no counter...
    hunt = make_hunt(daily_pacing_limit=5)
    real_take = pacing._take
    calls: list[bool] = []

    def take_while_another_worker_creates_the_counter(hunt_id, day, limit):
        took = real_take(hunt_id, day, limit)
        if not calls:
            # ...while another worker creates and commits the counter right after
            def other() -> None:
                with database.connection_context():
                    pacing.ensure_rows(hunt_id, day, ["whatsapp"])

            thread = threading.Thread(target=other)
            thread.start()
            thread.join()
        calls.append(took)
        return took

    monkeypatch.setattr(pacing, "_take", take_while_another_worker_creates_the_counter)
    # When it takes its slot, then the slot is taken: the counter is not mistaken for a full one
    assert pacing.increment(hunt.id, "whatsapp", DAY, limit=5) == 1
    assert calls == [False, True]
