"""Creating a hunt: checked in full before anything is written (invariant 7)."""

from __future__ import annotations

import pytest

from storage.errors import InvalidInput, InvalidState, NotFound, PermissionDenied
from storage.models import Account, Hunt, HuntChannelCredit, User
from tests.hunts.conftest import definition
from worker.hunts.definition import create_hunt, set_status


def test_a_hunt_is_created_with_its_credits(db, clock, owner):
    hunt = create_hunt(
        definition(
            owner,
            channels=["whatsapp", "email"],
            credits={"whatsapp": 10, "email": 3},
            criteria={"departments": ["75"], "brands": ["Renault"]},
        )
    )
    stored = Hunt.get_by_id(hunt.id)
    assert (stored.account_id, stored.owner_id, stored.status) == (
        owner.account_id,
        owner.id,
        "active",
    )
    assert stored.auto_refresh is True
    assert stored.channels == ["whatsapp", "email"]
    assert stored.criteria == {"departments": ["75"], "brands": ["renault"]}
    credits = {c.channel: c.allocated for c in HuntChannelCredit.select()}
    assert credits == {"whatsapp": 10, "email": 3}


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"message_template": "Hi {firstname}"}, InvalidInput, "unknown placeholder"),
        ({"daily_pacing_limit": -1}, InvalidInput, "daily_pacing_limit must be null or"),
        ({"daily_pacing_limit": "3"}, InvalidInput, "daily_pacing_limit"),
        ({"channels": ["sms"], "credits": {"sms": 1}}, InvalidInput, "unknown channel 'sms'"),
        ({"channels": []}, InvalidInput, "channels must be a non-empty list"),
        ({"credits": {}}, InvalidInput, "no credits for 'whatsapp'"),
        ({"credits": {"whatsapp": 1, "email": 1}}, InvalidInput, "'email' is not a channel"),
        ({"credits": {"whatsapp": -5}}, InvalidInput, "0 or more"),
        ({"criteria": {"departments": ["999"]}}, InvalidInput, "not a department code"),
        ({"status": "archived"}, InvalidInput, "status must be"),
        ({"name": ""}, InvalidInput, "name must be"),
        ({"colour": "red"}, InvalidInput, "unknown key 'colour'"),
        ({"owner_id": 999}, NotFound, "user 999 does not exist"),
        ({"owner_id": None}, InvalidInput, "owner_id is required"),
    ],
)
def test_bad_definitions_are_refused_and_write_nothing(db, clock, owner, overrides, error, message):
    with pytest.raises(error, match=message):
        create_hunt(definition(owner, **overrides))
    assert Hunt.select().count() == 0
    assert HuntChannelCredit.select().count() == 0


def test_an_owner_from_another_account_is_refused(db, clock, owner):
    other = Account.create(name="Other", created_at=clock.now())
    with pytest.raises(PermissionDenied, match=f"not a member of account {other.id}"):
        create_hunt(definition(owner, account_id=other.id))
    assert Hunt.select().count() == 0


def test_pause_resume_and_archive(db, clock, make_hunt):
    hunt = make_hunt()
    assert set_status(hunt.id, "paused").status == "paused"
    assert set_status(hunt.id, "active").status == "active"
    assert set_status(hunt.id, "archived").status == "archived"
    with pytest.raises(InvalidState, match="archived"):
        set_status(hunt.id, "active")
    with pytest.raises(NotFound):
        set_status(999, "paused")
    assert User.select().count() == 1
