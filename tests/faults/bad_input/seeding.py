"""The database the bad-input cases are refused against: one of everything a command can name
(owner, draft and cancelled campaigns, a template, live and archived hunts, an ad, outbox rows
sent and unknown), so that refusals are about the input, not about absence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from storage import clock as clock_module
from storage.models import (
    Account,
    Campaign,
    Contact,
    ContactList,
    MessageTemplate,
    OutboxMessage,
    User,
)


@dataclass(frozen=True)
class Seeded:
    backend: str
    url: str
    # Tokens the cases use in place of ids: <owner>, <draft>, <hunt>...
    ids: dict[str, int] = field(default_factory=dict)


def seed() -> dict[str, int]:
    """One of everything a command can name, so that refusals are about the input, not absence."""
    from worker.campaigns.create import CampaignSpec, create_campaign
    from worker.hunts.definition import create_hunt, set_status
    from worker.hunts.importing import import_lines

    now = clock_module.now()
    account = Account.create(name="Bakery", timezone="Europe/Paris", created_at=now)
    owner = User.create(account=account, name="Alice", created_at=now)
    other = User.create(account=account, name="Bob", created_at=now)
    customers = ContactList.create(name="customers", created_at=now)
    Contact.create(contact_list=customers, phone="+33611111111", first_name="Ann", created_at=now)
    Contact.create(contact_list=customers, email="ben@example.com", created_at=now)
    spec = {
        "owner_id": owner.id,
        "name": "Spring",
        "channel": "log",
        "contact_list": "customers",
        "template": "Hi {Name}",
    }
    draft = create_campaign(CampaignSpec.from_mapping(spec))
    cancelled = create_campaign(CampaignSpec.from_mapping({**spec, "name": "Old"}))
    Campaign.update(status="cancelled").where(Campaign.id == cancelled.id).execute()
    hunt_spec = {
        "owner_id": owner.id,
        "name": "Paris city cars",
        "channels": ["log"],
        "credits": {"log": 10},
        "daily_pacing_limit": 3,
        "message_template": "Bonjour {owner_name}, votre {title} m'intéresse.",
        "criteria": {"postal_codes": ["75"]},
    }
    hunt = create_hunt(hunt_spec)
    archived = create_hunt({**hunt_spec, "name": "Archived"})
    set_status(archived.id, "archived")
    import_lines([json.dumps(sample_ad(1)).encode()], strict=True)
    outbox = {}
    for status in ("unknown", "sent"):
        outbox[status] = OutboxMessage.create(
            idempotency_key=f"seed:{status}",
            channel="log",
            recipient="+33612345678",
            body="hello",
            source="manual",
            status=status,
            attempts=1,
            created_at=now,
            enqueued_at=now,
            claimed_at=now,
            finished_at=now,
        ).id
    return {
        "owner": owner.id,
        "other": other.id,
        "draft": draft.id,
        "cancelled": cancelled.id,
        "template": int(MessageTemplate.get(MessageTemplate.owner == owner.id).id),
        "hunt": hunt.id,
        "archived": archived.id,
        "unknown_row": outbox["unknown"],
        "sent_row": outbox["sent"],
    }


def sample_ad(n: int, **overrides: Any) -> dict[str, Any]:
    ad: dict[str, Any] = {
        "source": "leboncoin",
        "external_id": f"ext-{n}",
        "title": f"Renault Clio {n}",
        "price": 8000,
        "location": {"postal_code": "75011", "city": "Paris"},
        "owner": {"name": "Owner", "phone": "+33612345678"},
        "url": f"https://www.leboncoin.fr/ad/{n}",
        "published_at": "2026-03-01T10:00:00Z",
    }
    ad.update(overrides)
    return ad
