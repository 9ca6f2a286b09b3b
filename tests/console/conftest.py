"""Console fixtures: two accounts, each with an operator and a running campaign, and a client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from producers.operators import add_operator
from storage import clock
from storage.models import Account, Campaign, Contact, ContactList, User
from storage.settings import Settings
from worker.campaigns.control import run_manually
from worker.campaigns.create import CampaignSpec, create_campaign

PASSWORD = "console password 1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id still, with the smallest cost: the tests log in often on a shared machine."""
    import producers.operators as operators

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(operators, "_hasher", cheap)
    monkeypatch.setattr(operators, "_DUMMY_HASH", cheap.hash("not a password of anyone"))


@dataclass
class Tenant:
    account: Account
    operator: User
    email: str
    campaign: Campaign


def make_tenant(name: str, contacts: int = 3) -> Tenant:
    account = Account.create(name=name, created_at=clock.now())
    email = f"ops@{name.lower()}.example.com"
    operator = User.get_by_id(add_operator(account.id, email, PASSWORD)["id"])
    contact_list = ContactList.create(name=f"{name} customers", created_at=clock.now())
    Contact.insert_many(
        [
            {
                "contact_list": contact_list.id,
                "email": f"c{n}@{name.lower()}.example.com",
                "first_name": f"C{n}",
                "created_at": clock.now(),
            }
            for n in range(contacts)
        ]
    ).execute()
    spec = {
        "owner_id": operator.id,
        "name": f"{name} spring offer",
        "channel": "log",
        "contact_list": contact_list.name,
        "template": "Hello {Name}",
        "daily_send_limit": 2,
    }
    campaign = create_campaign(CampaignSpec.from_mapping(spec))
    campaign = run_manually(campaign.id, operator.id)
    return Tenant(account, operator, email, campaign)


@pytest.fixture
def tenants(db, clock) -> tuple[Tenant, Tenant]:
    return make_tenant("Acme"), make_tenant("Globex")


class Console:
    """A browser without JavaScript: keeps the cookie, reads each page's CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def get(self, path: str):
        response = self.client.get(path, follow_redirects=False)
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, data: dict[str, str], csrf: bool = True):
        form = {"csrf_token": self.csrf, **data} if csrf else data
        return self.client.post(path, data=form, follow_redirects=False)

    def login(self, email: str, password: str = PASSWORD):
        self.get("/console/login")
        return self.post("/console/login", {"email": email, "password": password})


def console_client(settings: Settings | None = None) -> TestClient:
    from producers.web.app import create_app

    return TestClient(create_app(settings or Settings()), base_url="http://testserver")


@pytest.fixture
def console() -> Iterator[Console]:
    # Not entered as a context manager: no lifespan, so no in-process worker beside the test's.
    client = console_client()
    yield Console(client)
    client.close()
