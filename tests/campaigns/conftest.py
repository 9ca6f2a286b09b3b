"""Campaign fixtures: an owner, contact lists written straight to the table, campaigns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from storage import clock as clock_module
from storage.models import (
    Account,
    Campaign,
    Contact,
    ContactList,
    User,
)
from worker.campaigns.create import CampaignSpec, create_campaign


@pytest.fixture
def account(db, clock) -> Account:
    return Account.create(name="Bakery Martin", created_at=clock.now())


@pytest.fixture
def owner(account) -> User:
    return User.create(account=account, name="Alice", created_at=clock_module.now())


@pytest.fixture
def stranger(account) -> User:
    return User.create(account=account, name="Mallory", created_at=clock_module.now())


def contact_row(n: int, list_id: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "contact_list": list_id,
        "phone": f"+3361{n:07d}",
        "email": f"contact{n}@example.com",
        "first_name": f"Name{n}",
        "created_at": clock_module.now(),
    }
    row.update(overrides)
    return row


@pytest.fixture
def make_list(db, clock) -> Callable[..., ContactList]:
    """A list of `count` contacts numbered from `start` (or add them to an existing list)."""

    def make(count: int, name: str = "customers", start: int = 1, **overrides: Any) -> ContactList:
        contact_list, _ = ContactList.get_or_create(
            name=name, defaults={"created_at": clock_module.now()}
        )
        rows = [contact_row(n, contact_list.id, **overrides) for n in range(start, start + count)]
        for i in range(0, len(rows), 500):
            Contact.insert_many(rows[i : i + 500]).execute()
        return contact_list

    return make


@pytest.fixture
def make_campaign(owner) -> Callable[..., Campaign]:
    def make(list_: ContactList, /, **fields: Any) -> Campaign:
        data: dict[str, Any] = {
            "owner_id": owner.id,
            "name": "Spring offer",
            "channel": "log",
            "contact_list": list_.name,
            "template": "Hello {Name}, our spring offer is here.",
            "daily_send_limit": 5,
        }
        data.update(fields)
        return create_campaign(CampaignSpec.from_mapping(data))

    return make
