"""Hunt fixtures: an account and its owner, ads written straight to the table, hunts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from storage import clock as clock_module
from storage.models import Account, Ad, Hunt, User
from worker.hunts.definition import create_hunt

# Paris is UTC+1 in March 2026 (summer time starts on the 29th).
PARIS = "Europe/Paris"


@pytest.fixture
def account(db, clock) -> Account:
    return Account.create(name="Garage Dupont", timezone=PARIS, created_at=clock.now())


@pytest.fixture
def owner(account) -> User:
    return User.create(account=account, name="Claire", created_at=clock_module.now())


def ad_row(n: int, **overrides: Any) -> dict[str, Any]:
    """One ad, by default a Renault city car in Paris 11e with a phone and an email."""
    now = clock_module.now()
    row: dict[str, Any] = {
        "source": "leboncoin",
        "external_id": f"ext-{n}",
        "title": f"Renault Clio {n}",
        "price": 8_000,
        "postal_code": "75011",
        "city": "Paris",
        "category": "voitures",
        "sub_type": "citadine",
        "brand": "renault",
        "owner_name": f"Owner {n}",
        "owner_phone": f"+336{n:08d}",
        "owner_email": f"owner{n}@example.com",
        "url": f"https://www.leboncoin.fr/ad/{n}",
        # Ad n is n minutes old: lower numbers are newer.
        "published_at": now - timedelta(minutes=n),
        "imported_at": now,
        "updated_at": now,
    }
    row.update(overrides)
    return row


@pytest.fixture
def make_ads(db, clock) -> Callable[..., list[int]]:
    """Insert `count` ads (numbered from `start`); returns their ids, newest first."""

    def make(count: int, start: int = 1, **overrides: Any) -> list[int]:
        rows = [ad_row(n, **overrides) for n in range(start, start + count)]
        Ad.insert_many(rows).execute()
        ids = [
            ad.id
            for ad in Ad.select(Ad.id)
            .where(Ad.external_id.in_([r["external_id"] for r in rows]))
            .order_by(Ad.published_at.desc())
        ]
        return ids

    return make


def definition(owner: User, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "owner_id": owner.id,
        "name": "City cars in Paris",
        "daily_pacing_limit": 3,
        "channels": ["whatsapp"],
        "credits": {"whatsapp": 100},
        "message_template": "Bonjour {owner_name}, votre {title} à {price} € m'intéresse.",
        "criteria": {"departments": ["75"], "sub_types": ["citadine"]},
    }
    data.update(overrides)
    return data


@pytest.fixture
def make_hunt(owner) -> Callable[..., Hunt]:
    def make(**overrides: Any) -> Hunt:
        return create_hunt(definition(owner, **overrides))

    return make


def at_paris(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(PARIS))
