"""Web fixtures: two accounts with an owner each, an API token, campaigns and hunts, a client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from producers.api_tokens import create_token
from producers.scheduler import triggers
from producers.scheduler.firing import LocalFireLocks
from storage import clock as clock_module
from storage.models import Account, Campaign, Contact, ContactList, Hunt, User
from storage.settings import Settings
from worker.campaigns.create import CampaignSpec, create_campaign
from worker.hunts.definition import create_hunt


@pytest.fixture(autouse=True)
def fresh_local_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedded mode's fire locks live in the process: each test starts without any."""
    monkeypatch.setattr(triggers, "_local_locks", LocalFireLocks())


@pytest.fixture
def account(db, clock) -> Account:
    return Account.create(name="Bakery Martin", timezone="Europe/Paris", created_at=clock.now())


@pytest.fixture
def owner(account) -> User:
    return User.create(account=account, name="Alice", created_at=clock_module.now())


@pytest.fixture
def other_owner(db, clock) -> User:
    other = Account.create(name="Rival", created_at=clock.now())
    return User.create(account=other, name="Mallory", created_at=clock.now())


@pytest.fixture
def token(account) -> str:
    created: str = create_token(account.id, "cron")["token"]
    return created


def other_last_character(token: str) -> str:
    """The token with its last character changed (still a well-formed token)."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_campaign(owner: User, contacts: int = 3, **fields: Any) -> Campaign:
    """A draft campaign of `owner` to a new list of `contacts` contacts."""
    now = clock_module.now()
    contact_list = ContactList.create(
        name=f"list-{ContactList.select().count() + 1}", created_at=now
    )
    Contact.insert_many(
        [
            {
                "contact_list": contact_list.id,
                "phone": f"+3361{n:07d}",
                "first_name": f"Name{n}",
                "created_at": now,
            }
            for n in range(1, contacts + 1)
        ]
    ).execute()
    data: dict[str, Any] = {
        "owner_id": owner.id,
        "name": "Spring offer",
        "channel": "log",
        "contact_list": contact_list.name,
        "template": "Hello {Name}",
        "daily_send_limit": 2,
        **fields,
    }
    return create_campaign(CampaignSpec.from_mapping(data))


def new_hunt(owner: User, **fields: Any) -> Hunt:
    data: dict[str, Any] = {
        "owner_id": owner.id,
        "name": "City cars in Paris",
        "daily_pacing_limit": 3,
        "channels": ["whatsapp"],
        "credits": {"whatsapp": 100},
        "message_template": "Bonjour {owner_name}",
        "criteria": {"departments": ["75"]},
        **fields,
    }
    return create_hunt(data)


@pytest.fixture
def make_campaign(db, clock) -> Callable[..., Campaign]:
    return new_campaign


@pytest.fixture
def make_hunt(db, clock) -> Callable[..., Hunt]:
    return new_hunt


@pytest.fixture
def client(db) -> Iterator[TestClient]:
    """The web app in this process (no lifespan: nothing works the queues behind the test's
    back, so a test sees exactly what a request enqueued)."""
    from producers.web.app import create_app

    yield TestClient(create_app(Settings()), raise_server_exceptions=True)


def queued(broker: Any, queue: str) -> list[tuple[Any, ...]]:
    """The arguments of the messages waiting on an in-process broker's queue."""
    import dramatiq

    waiting = broker.queues.get(queue)
    if waiting is None:
        return []
    return [tuple(dramatiq.Message.decode(body).args) for body in waiting.queue]
