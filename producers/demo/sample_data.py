"""The demo's sample data: two accounts, three hunts over a few hundred ads, a campaign of 17
contacts, and users in every engagement state.

Everything is generated from a fixed seed and a fixed start, so two runs of the demo tell the
same story. No command creates accounts or users, so they are written through the models;
hunts, ads and the campaign go through the same functions as `outreach hunt create`,
`outreach ads import` and `outreach campaign create`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.db import write_transaction
from storage.models.accounts import Account, User
from storage.models.campaigns import Contact, ContactList
from storage.models.engagement import (
    ACTIVE,
    DORMANT,
    GOODBYE_SENT,
    GROUP,
    INDIVIDUAL,
    REMIND_LATER,
    EngagementState,
    UserProfile,
)

# A Monday, four weeks before the spring daylight-saving change (08:00 Paris is 07:00 UTC).
DEMO_START = datetime(2026, 3, 2, tzinfo=UTC)
DEMO_DAYS = 4
SEED = 20260302
AD_COUNT = 300
# Ads are published over the month before the demo starts.
AD_AGE = timedelta(days=30)

CAMPAIGN_CONTACTS = 17
CAMPAIGN_DAILY_LIMIT = 5
# The campaign's first batch is due on the first morning; the next ones 24 h apart.
CAMPAIGN_START = DEMO_START + timedelta(hours=9)

_FIRST_NAMES = (
    "Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Gaëlle", "Hugo", "Inès", "Jules",
    "Karim", "Léa", "Manon", "Nathan", "Océane", "Paul", "Quentin", "Rose", "Samir", "Théo",
    "Ulysse", "Valentin", "Yasmine", "Zoé",
)  # fmt: skip
_CITIES = {
    "75": ("Paris", ("75003", "75011", "75015", "75018", "75020")),
    "92": ("Boulogne-Billancourt", ("92100",)),
    "93": ("Montreuil", ("93100",)),
    "94": ("Vincennes", ("94300",)),
    "69": ("Lyon", ("69003", "69007", "69008")),
    "13": ("Marseille", ("13005", "13008")),
    "33": ("Bordeaux", ("33000", "33800")),
}
_MODELS = {
    "renault": {"citadine": ("Clio", "Twingo"), "berline": ("Megane", "Talisman"),
                "suv": ("Captur", "Kadjar"), "utilitaire": ("Kangoo", "Trafic")},
    "peugeot": {"citadine": ("208", "108"), "berline": ("308", "508"),
                "suv": ("2008", "3008"), "utilitaire": ("Partner", "Expert")},
    "citroen": {"citadine": ("C3", "C1"), "berline": ("C4", "C5"),
                "suv": ("C3 Aircross", "C5 Aircross"), "utilitaire": ("Berlingo", "Jumpy")},
    "volkswagen": {"citadine": ("Polo", "up!"), "berline": ("Golf", "Passat"),
                   "suv": ("T-Roc", "Tiguan"), "utilitaire": ("Caddy", "Transporter")},
    "toyota": {"citadine": ("Yaris", "Aygo"), "berline": ("Corolla", "Camry"),
               "suv": ("C-HR", "RAV4"), "utilitaire": ("Proace", "Hilux")},
}  # fmt: skip
_PRICES = {
    "citadine": (2_000, 14_000),
    "berline": (4_000, 22_000),
    "suv": (6_000, 30_000),
    "utilitaire": (3_000, 20_000),
}

HUNT_TEMPLATE = (
    "Hello {owner_name|there}, is your {title} at {price} € in {city} still for sale? "
    "We buy cars like it within the week. {url}"
)
CAMPAIGN_TEMPLATE = (
    "Hello {Name}, Garage Dupont's spring service is on: 20% off every check-up until the end "
    "of March. Reply to book a slot."
)


@dataclass(frozen=True)
class EngagementGroup:
    """Users who start the demo in the same situation, and what should become of them."""

    label: str
    state: str
    count: int
    # How long before the demo's start the users were last active.
    inactive_for: timedelta
    goodbye_expires_in: timedelta | None = None  # from the demo's start
    remind_in: timedelta | None = None  # from the demo's start
    opted_out: bool = False


ENGAGEMENT_GROUPS = (
    EngagementGroup("active, used the app in the last days", ACTIVE, 4, timedelta(days=2)),
    EngagementGroup("inactive for 20 days: goodbye due", ACTIVE, 3, timedelta(days=20)),
    EngagementGroup(
        "inactive for 13 days: goodbye due on day 2", ACTIVE, 2, timedelta(days=13, hours=-3)
    ),
    EngagementGroup(
        "goodbye sent, its 48 h ran out",
        GOODBYE_SENT,
        2,
        timedelta(days=17),
        goodbye_expires_in=timedelta(hours=-1),
    ),
    EngagementGroup(
        "goodbye sent, its 48 h run out on day 2",
        GOODBYE_SENT,
        1,
        timedelta(days=16),
        goodbye_expires_in=timedelta(days=1, hours=5),
    ),
    EngagementGroup(
        "asked to be reminded, reminder due",
        REMIND_LATER,
        1,
        timedelta(days=25),
        remind_in=timedelta(hours=-2),
    ),
    EngagementGroup(
        "asked to be reminded, reminder due on day 3",
        REMIND_LATER,
        1,
        timedelta(days=22),
        remind_in=timedelta(days=2, hours=12),
    ),
    EngagementGroup(
        "opted out of re-engagement, inactive for 30 days",
        ACTIVE,
        2,
        timedelta(days=30),
        opted_out=True,
    ),
    EngagementGroup("dormant already", DORMANT, 1, timedelta(days=60)),
)


@dataclass
class SampleData:
    accounts: dict[str, int] = field(default_factory=dict)
    hunts: dict[str, int] = field(default_factory=dict)
    campaign_id: int = 0
    ads: int = 0
    engagement_users: dict[str, list[int]] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "accounts": len(self.accounts),
            "ads": self.ads,
            "hunts": len(self.hunts),
            "campaign_contacts": CAMPAIGN_CONTACTS,
            "engagement_users": {k: len(v) for k, v in self.engagement_users.items()},
        }


def _phone(rng: random.Random) -> str:
    return "+336" + "".join(str(rng.randrange(10)) for _ in range(8))


def generate_ads(rng: random.Random, start: datetime, count: int = AD_COUNT) -> list[bytes]:
    """The scraper's JSON Lines for `count` ads published in the month before `start`."""
    lines = []
    departments = list(_CITIES)
    for number in range(1, count + 1):
        department = rng.choice(departments)
        city, postal_codes = _CITIES[department]
        brand = rng.choice(list(_MODELS))
        sub_type = rng.choice(list(_PRICES))
        model = rng.choice(_MODELS[brand][sub_type])
        low, high = _PRICES[sub_type]
        price = None if rng.random() < 0.05 else rng.randrange(low, high, 100)
        first_name = rng.choice(_FIRST_NAMES)
        owner: dict[str, str] = {"name": f"{first_name} {rng.choice('BCDFGLMNPRST')}."}
        if rng.random() < 0.8:
            owner["phone"] = _phone(rng)
        if "phone" not in owner or rng.random() < 0.5:
            owner["email"] = f"{first_name.lower()}.{number}@example.org"
        published = start - timedelta(seconds=rng.randrange(int(AD_AGE.total_seconds())))
        record = {
            "source": "leboncoin",
            "external_id": f"demo-{number:04d}",
            "title": f"{brand.title()} {model} {rng.randrange(2010, 2024)}",
            "price": price,
            "location": {"postal_code": rng.choice(postal_codes), "city": city},
            "category": "voitures",
            "sub_type": sub_type,
            "brand": brand,
            "owner": owner,
            "url": f"https://www.leboncoin.fr/ad/voitures/{3_000_000_000 + number}",
            "published_at": published.isoformat(),
        }
        lines.append(json.dumps(record, ensure_ascii=False).encode())
    return lines


def hunt_definitions(owners: dict[str, int]) -> list[dict[str, Any]]:
    """Three hunts: a limit met every day until the matches run out, a small limit met every
    day, and credits that run out before the matches do."""
    return [
        {
            "owner_id": owners["dupont"],
            "name": "Small cars in Paris under 8,000 €",
            "daily_pacing_limit": 8,
            "channels": ["whatsapp", "email"],
            "credits": {"whatsapp": 100, "email": 100},
            "message_template": HUNT_TEMPLATE,
            "criteria": {
                "departments": ["75", "92", "93", "94"],
                "sub_types": ["citadine"],
                "price_max": 8_000,
            },
        },
        {
            "owner_id": owners["rhone"],
            "name": "Vans around Lyon",
            "daily_pacing_limit": 2,
            "channels": ["whatsapp", "email"],
            "credits": {"whatsapp": 50, "email": 50},
            "message_template": HUNT_TEMPLATE,
            "criteria": {"departments": ["69"], "sub_types": ["utilitaire"]},
        },
        {
            "owner_id": owners["dupont"],
            "name": "Renault & Peugeot under 15,000 €",
            "daily_pacing_limit": 5,
            "channels": ["whatsapp"],
            "credits": {"whatsapp": 12},
            "message_template": HUNT_TEMPLATE,
            "criteria": {
                "brands": ["renault", "peugeot"],
                "sub_types": ["berline", "suv"],
                "price_max": 15_000,
                "published_within_days": 30,
            },
        },
    ]


def _accounts(now: datetime) -> tuple[dict[str, int], dict[str, int]]:
    with write_transaction():
        dupont = Account.create(name="Garage Dupont", timezone="Europe/Paris", created_at=now)
        rhone = Account.create(name="Rhône Utilitaires", timezone="Europe/Paris", created_at=now)
        owners = {
            "dupont": User.create(
                account=dupont,
                name="Claire Dupont",
                email="claire@garage-dupont.example",
                created_at=now,
            ).id,
            "rhone": User.create(
                account=rhone, name="Marc Girard", email="marc@rhone.example", created_at=now
            ).id,
        }
    return {"Garage Dupont": dupont.id, "Rhône Utilitaires": rhone.id}, owners


def _engagement_users(rng: random.Random, account_id: int, start: datetime) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    number = 0
    locales = ("en", "fr", "pt-BR", "fr-CA")
    with write_transaction():
        for group in ENGAGEMENT_GROUPS:
            ids = groups.setdefault(group.label, [])
            for _ in range(group.count):
                number += 1
                name = _FIRST_NAMES[(number * 7) % len(_FIRST_NAMES)]
                user = User.create(
                    account=account_id,
                    name=f"{name} (member {number})",
                    phone=_phone(rng),
                    created_at=start - timedelta(days=90),
                )
                # One member reads us in a WhatsApp group rather than a private chat.
                in_group = number == 5
                UserProfile.create(
                    user=user,
                    preferred_destination=GROUP if in_group else INDIVIDUAL,
                    group_jid="120363041234567890@g.us" if in_group else None,
                    locale=locales[number % len(locales)],
                    reengagement_opt_out=group.opted_out,
                    created_at=start - timedelta(days=90),
                )
                EngagementState.create(
                    user=user,
                    state=group.state,
                    last_activity_at=start - group.inactive_for,
                    goodbye_expires_at=None
                    if group.goodbye_expires_in is None
                    else start + group.goodbye_expires_in,
                    remind_at=None if group.remind_in is None else start + group.remind_in,
                    updated_at=start,
                )
                ids.append(user.id)
    return groups


def _campaign(rng: random.Random, owner_id: int, now: datetime) -> int:
    from worker.campaigns.create import CampaignSpec, create_campaign

    with write_transaction():
        contact_list = ContactList.create(name="Garage Dupont customers", created_at=now)
        rows = []
        for number in range(1, CAMPAIGN_CONTACTS + 1):
            # A few contacts have no first name: the template's {Name} falls back to "there".
            first_name = None if number % 6 == 0 else _FIRST_NAMES[number % len(_FIRST_NAMES)]
            rows.append((contact_list.id, _phone(rng), None, first_name, now))
        Contact.insert_many(
            rows,
            fields=[
                Contact.contact_list,
                Contact.phone,
                Contact.email,
                Contact.first_name,
                Contact.created_at,
            ],
        ).execute()
    campaign = create_campaign(
        CampaignSpec(
            owner_id=owner_id,
            name="Spring service offer",
            channel="whatsapp",
            contact_list=contact_list.id,
            template=CAMPAIGN_TEMPLATE,
            daily_send_limit=CAMPAIGN_DAILY_LIMIT,
            start_at=CAMPAIGN_START,
        )
    )
    return int(campaign.id)


def load_sample_data(start: datetime = DEMO_START, seed: int = SEED) -> SampleData:
    """Write the sample data into the (migrated, empty) database; the clock reads `start`."""
    from worker.hunts.definition import create_hunt
    from worker.hunts.importing import import_lines

    rng = random.Random(seed)
    data = SampleData()
    data.accounts, owners = _accounts(start)
    report = import_lines(generate_ads(rng, start), strict=True)
    data.ads = report.written
    for definition in hunt_definitions(owners):
        data.hunts[definition["name"]] = int(create_hunt(definition).id)
    data.campaign_id = _campaign(rng, owners["dupont"], start)
    data.engagement_users = _engagement_users(rng, data.accounts["Garage Dupont"], start)
    return data
