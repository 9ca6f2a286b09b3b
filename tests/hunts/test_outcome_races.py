"""The statements a delivery's outcomes and a run's end cost, each in its race: the same
window's outcomes recorded by two workers at once, settlements of one hunt's credits at once,
and the same run (its last page and its end in one transaction) on two workers at once."""

from __future__ import annotations

import pytest

from storage.db import write_transaction
from storage.models import ContactedAd, HuntChannelCredit, HuntRun, Lead, OutboxMessage
from tests.hunts.test_page import DAY, _at_once
from worker.hunts import credits, pacing
from worker.hunts.outcomes import record_hunt_outcomes
from worker.hunts.process import run_hunt


def _credit(hunt_id: int) -> tuple[int, int, int]:
    row = HuntChannelCredit.get(HuntChannelCredit.hunt == hunt_id)
    return row.allocated, row.reserved, row.consumed


def _ended(status: str) -> list[OutboxMessage]:
    """Every queued outbox row, as its delivery reports it once it ended with `status`."""
    OutboxMessage.update(status=status).execute()
    return list(OutboxMessage.select().order_by(OutboxMessage.id))


@pytest.mark.parametrize("status", ["sent", "failed"])
def test_one_window_s_outcomes_recorded_by_two_workers_at_once_are_applied_once(
    db, clock, make_ads, make_hunt, status
):
    # Given three contacts queued, each holding a slot and a credit
    make_ads(3)
    hunt = make_hunt(channels=["log"], credits={"log": 5}, daily_pacing_limit=3)
    assert run_hunt(hunt.id)["contacted"] == 3
    window = _ended(status)

    # When two workers record the same window's outcomes at the same moment
    def record() -> None:
        with write_transaction():
            record_hunt_outcomes(window)

    _at_once(2, record)
    # Then each contact was settled once: its credit consumed or freed once, its slot given
    # back once (a failure), its lead moved once (a send)
    assert {c.status for c in ContactedAd.select()} == {status}
    if status == "sent":
        assert _credit(hunt.id) == (5, 0, 3)
        assert pacing.today_count(hunt.id) == 3
        assert {lead.stage for lead in Lead.select()} == {"contacte"}
    else:
        assert _credit(hunt.id) == (5, 0, 0)
        assert pacing.today_count(hunt.id) == 0
        assert {lead.stage for lead in Lead.select()} == {"nouveau"}


def test_settlements_of_one_hunt_s_credits_at_once_never_take_reserved_below_zero(
    db, clock, make_hunt
):
    # Given 4 credits reserved, and six workers each settling two of them at the same moment
    hunt = make_hunt(channels=["log"], credits={"log": 10})
    assert credits.reserve_many(hunt.id, "log", 4) == 4

    def settle() -> None:
        with write_transaction():
            credits.settle(hunt.id, "log", used=1, freed=1)

    _at_once(6, settle)
    # Then only the 4 reservations were settled: never more, and nothing reserved is left
    allocated, reserved, consumed = _credit(hunt.id)
    assert (allocated, reserved) == (10, 0)
    assert 0 <= consumed <= 4
    assert credits.available(hunt.id) == {"log": 10 - consumed}


@pytest.mark.parametrize("db", ["postgres"], indirect=True)
def test_the_same_run_on_two_workers_at_once_ends_its_run_row_with_every_contact_once(
    db, clock, make_ads, make_hunt
):
    # Given a run row of today for a hunt limited to 4 a day, and 10 matching ads
    make_ads(10)
    hunt = make_hunt(daily_pacing_limit=4, credits={"whatsapp": 10})
    run = HuntRun.create(hunt=hunt.id, day=DAY, claim="sweep", enqueued_at=clock.now())
    # When its message runs on two workers at the same moment, then once more (redelivered)
    results = _at_once(2, lambda: run_hunt(hunt.id, run.id))
    again = run_hunt(hunt.id, run.id)
    # Then the run row counts the 4 contacts once, whichever worker made them, and is finished
    assert sum(r["contacted"] for r in results) == 4
    assert again["contacted"] == 0
    row = HuntRun.get_by_id(run.id)
    assert row.contacted == 4
    assert row.finished_at is not None
    assert Lead.select().count() == ContactedAd.select().count() == 4
    assert pacing.today_count(hunt.id) == 4
