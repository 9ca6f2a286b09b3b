"""Channel credits: reserved when a message is queued, then consumed (sent) or given back."""

from __future__ import annotations

import pytest

from storage.errors import InvalidInput
from storage.models import HuntChannelCredit
from worker.hunts import credits


def test_reserve_until_none_is_left(db, clock, make_hunt):
    hunt = make_hunt(channels=["whatsapp", "email"], credits={"whatsapp": 2, "email": 0})
    assert credits.available(hunt.id) == {"whatsapp": 2, "email": 0}
    assert credits.reserve(hunt.id, "whatsapp")
    assert credits.reserve(hunt.id, "whatsapp")
    assert not credits.reserve(hunt.id, "whatsapp")
    assert not credits.reserve(hunt.id, "email")
    assert credits.available(hunt.id) == {"whatsapp": 0, "email": 0}


def test_consume_and_release_settle_a_reservation_once(db, clock, make_hunt):
    hunt = make_hunt(credits={"whatsapp": 3})
    credits.reserve(hunt.id, "whatsapp")
    credits.reserve(hunt.id, "whatsapp")
    assert credits.consume(hunt.id, "whatsapp")
    assert credits.release(hunt.id, "whatsapp")
    # Nothing left reserved: a second settlement changes nothing
    assert not credits.consume(hunt.id, "whatsapp")
    assert not credits.release(hunt.id, "whatsapp")
    row = HuntChannelCredit.get(HuntChannelCredit.hunt == hunt.id)
    assert (row.allocated, row.reserved, row.consumed) == (3, 0, 1)
    assert credits.available(hunt.id) == {"whatsapp": 2}


def test_allocate_adds_credits_and_refuses_negative_amounts(db, clock, make_hunt):
    hunt = make_hunt(credits={"whatsapp": 1})
    credits.allocate(hunt.id, {"whatsapp": 4})
    assert credits.available(hunt.id) == {"whatsapp": 5}
    with pytest.raises(InvalidInput, match="0 or more"):
        credits.allocate(hunt.id, {"whatsapp": -1})
    assert credits.available(hunt.id) == {"whatsapp": 5}


def test_settle_many_reservations_in_one_go(db, clock, make_hunt):
    hunt = make_hunt(channels=["log"], credits={"log": 10})
    for _ in range(5):
        assert credits.reserve(hunt.id, "log")
    # When three went out and two failed, settled together
    credits.settle(hunt.id, "log", used=3, freed=2)
    # Then three are consumed and two are free again
    row = HuntChannelCredit.get(HuntChannelCredit.hunt == hunt.id)
    assert (row.reserved, row.consumed) == (0, 3)
    assert credits.available(hunt.id) == {"log": 7}


def test_settle_more_than_is_reserved_never_goes_below_zero(db, clock, make_hunt):
    # Given one reservation, and an outcome report for three (a row settled by hand meanwhile)
    hunt = make_hunt(channels=["log"], credits={"log": 10})
    assert credits.reserve(hunt.id, "log")
    credits.settle(hunt.id, "log", used=2, freed=1)
    # Then what was reserved is settled, one at a time, and nothing goes negative
    row = HuntChannelCredit.get(HuntChannelCredit.hunt == hunt.id)
    assert (row.reserved, row.consumed) == (0, 1)
