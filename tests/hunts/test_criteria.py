"""Criteria are checked once, then matched in SQL: location, sub-types, brands, price, keywords,
publication date, and ads already a lead of the account left out (seed 001)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage.errors import InvalidInput
from storage.models import Ad, Lead
from worker.hunts.criteria import matching_query, parse_criteria


def match(criteria: dict, account_id: int, now, channels=("log",), limit=100, after=None):
    query = matching_query(
        parse_criteria(criteria),
        account_id=account_id,
        now=now,
        channels=list(channels),
        limit=limit,
        after=after,
    )
    return [ad.external_id for ad in query]


# --- parsing (no database) -----------------------------------------------------------------------


def test_departments_and_postal_codes_become_non_overlapping_prefixes():
    criteria = parse_criteria({"departments": ["75", "2a", "971"], "postal_codes": ["750", "92"]})
    assert criteria.departments == ("75", "2A", "971")
    # "750" is inside "75"; Corsica-du-Sud is 200xx-201xx
    assert criteria.postal_prefixes() == ("200", "201", "75", "92", "971")


def test_sub_types_and_brands_are_compared_lower_case():
    criteria = parse_criteria({"sub_types": ["Citadine"], "brands": ["RENAULT", "renault"]})
    assert criteria.sub_types == ("citadine",)
    assert criteria.brands == ("renault",)


def test_criteria_survive_a_round_trip_through_json():
    data = {
        "departments": ["75"],
        "price_min": 1000,
        "price_max": 9000,
        "keywords": ["clio"],
        "published_since": "2026-02-01",
        "published_within_days": 30,
    }
    criteria = parse_criteria(data)
    assert parse_criteria(criteria.to_json()) == criteria


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"colour": ["red"]}, "unknown key 'colour'"),
        ({"departments": ["100"]}, "not a department code"),
        ({"postal_codes": ["75A"]}, "not 1 to 5 digits"),
        ({"price_min": -1}, "price_min must be a whole number"),
        ({"price_min": 10, "price_max": 5}, "price_min 10 is above price_max 5"),
        ({"sub_types": "citadine "}, None),
        ({"brands": [""]}, "empty value"),
        ({"brands": [3]}, "list of strings"),
        ({"published_since": "yesterday"}, "not an ISO date"),
        ({"published_within_days": 99999}, "at most"),
        ([], "must be an object"),
    ],
)
def test_bad_criteria_are_refused(criteria, expected):
    if expected is None:
        parse_criteria(criteria)  # a single string is taken as a list of one
        return
    with pytest.raises(InvalidInput, match=expected):
        parse_criteria(criteria)


# --- matching (both backends) --------------------------------------------------------------------


def test_location_matches_department_and_postal_code_prefixes(db, clock, account, make_ads):
    make_ads(1, start=1, postal_code="75011")
    make_ads(1, start=2, postal_code="92100")
    make_ads(1, start=3, postal_code="20090")  # Ajaccio, Corse-du-Sud
    make_ads(1, start=4, postal_code="20200")  # Bastia, Haute-Corse
    make_ads(1, start=5, postal_code="76000")
    now = clock.now()
    assert match({"departments": ["75"]}, account.id, now) == ["ext-1"]
    assert match({"postal_codes": ["9"]}, account.id, now) == ["ext-2"]
    assert match({"departments": ["2A"]}, account.id, now) == ["ext-3"]
    assert match({"departments": ["75", "2B"]}, account.id, now) == ["ext-1", "ext-4"]
    assert match({"postal_codes": ["75011"]}, account.id, now) == ["ext-1"]


def test_sub_types_brands_and_price_range(db, clock, account, make_ads):
    make_ads(1, start=1, sub_type="citadine", brand="renault", price=5_000)
    make_ads(1, start=2, sub_type="berline", brand="renault", price=5_000)
    make_ads(1, start=3, sub_type="citadine", brand="peugeot", price=15_000)
    make_ads(1, start=4, sub_type="citadine", brand="fiat", price=None)
    now = clock.now()
    assert match({"sub_types": ["citadine"]}, account.id, now) == ["ext-1", "ext-3", "ext-4"]
    assert match({"brands": ["peugeot", "fiat"]}, account.id, now) == ["ext-3", "ext-4"]
    # An ad with no price never matches a price range
    assert match({"price_max": 10_000}, account.id, now) == ["ext-1", "ext-2"]
    assert match({"price_min": 10_000}, account.id, now) == ["ext-3"]
    assert match(
        {"price_min": 5_000, "price_max": 5_000, "sub_types": ["citadine"]}, account.id, now
    ) == ["ext-1"]


def test_title_keywords_match_case_insensitively_and_literally(db, clock, account, make_ads):
    make_ads(1, start=1, title="RENAULT CLIO dCi")
    make_ads(1, start=2, title="Peugeot 208 GT")
    make_ads(1, start=3, title="Remise 100% neuve")
    make_ads(1, start=4, title="Remise 1000 neuve")
    now = clock.now()
    assert match({"keywords": ["clio"]}, account.id, now) == ["ext-1"]
    assert match({"keywords": ["Clio", "208"]}, account.id, now) == ["ext-1", "ext-2"]
    # % is a character to find, not a wildcard
    assert match({"keywords": ["100%"]}, account.id, now) == ["ext-3"]


def test_published_since_and_within_days(db, clock, account, make_ads):
    make_ads(1, start=1, published_at=clock.now() - timedelta(days=1))
    make_ads(1, start=2, published_at=clock.now() - timedelta(days=10))
    make_ads(1, start=3, published_at=clock.now() - timedelta(days=40))
    now = clock.now()
    assert match({"published_within_days": 7}, account.id, now) == ["ext-1"]
    since = (now - timedelta(days=20)).isoformat()
    assert match({"published_since": since}, account.id, now) == ["ext-1", "ext-2"]
    # Both: the later bound wins
    assert match({"published_since": since, "published_within_days": 5}, account.id, now) == [
        "ext-1"
    ]


def test_ads_already_a_lead_of_the_account_are_left_out(
    db, clock, account, owner, make_ads, make_hunt
):
    from storage.models import Account

    ids = make_ads(3)
    hunt = make_hunt()
    other = Account.create(name="Other", created_at=clock.now())
    Lead.create(
        account=account, hunt=hunt, ad=ids[0], created_at=clock.now(), updated_at=clock.now()
    )
    now = clock.now()
    # Given ad 1 is a lead of this account: it is not matched again for this account...
    assert match({}, account.id, now) == ["ext-2", "ext-3"]
    # ...but still is for another account
    assert match({}, other.id, now) == ["ext-1", "ext-2", "ext-3"]


def test_only_ads_with_a_contact_the_channels_can_use(db, clock, account, make_ads):
    make_ads(1, start=1, owner_email=None)
    make_ads(1, start=2, owner_phone=None)
    now = clock.now()
    assert match({}, account.id, now, channels=["whatsapp"]) == ["ext-1"]
    assert match({}, account.id, now, channels=["email"]) == ["ext-2"]
    assert match({}, account.id, now, channels=["whatsapp", "email"]) == ["ext-1", "ext-2"]
    assert match({}, account.id, now, channels=["log"]) == ["ext-1", "ext-2"]


def test_newest_first_in_keyset_pages(db, clock, account, make_ads):
    make_ads(5)
    now = clock.now()
    first = match({}, account.id, now, limit=2)
    assert first == ["ext-1", "ext-2"]
    last = Ad.get(Ad.external_id == "ext-2")
    assert match({}, account.id, now, limit=2, after=(last.published_at, last.id)) == [
        "ext-3",
        "ext-4",
    ]


def test_find_matches_searches_window_by_window_and_keeps_newest_first(
    db, clock, account, make_ads
):
    from worker.hunts.criteria import find_matches

    # Given ads published 2 hours, 2 days, 10 days, 40 days and 100 days ago
    for n, age in enumerate(
        [
            timedelta(hours=2),
            timedelta(days=2),
            timedelta(days=10),
            timedelta(days=40),
            timedelta(days=100),
        ],
        start=1,
    ):
        make_ads(1, start=n, published_at=clock.now() - age)
    now = clock.now()

    def find(criteria, limit, after=None):
        ads = find_matches(
            parse_criteria(criteria),
            account_id=account.id,
            now=now,
            channels=["log"],
            limit=limit,
            after=after,
        )
        return [ad.external_id for ad in ads], ((ads[-1].published_at, ads[-1].id) if ads else None)

    # Every window in turn, newest first, however many are needed
    assert find({}, 10)[0] == ["ext-1", "ext-2", "ext-3", "ext-4", "ext-5"]
    # Pages continue where the last one stopped, across windows
    first, cursor = find({}, 2)
    assert first == ["ext-1", "ext-2"]
    second, cursor = find({}, 2, after=cursor)
    assert second == ["ext-3", "ext-4"]
    assert find({}, 2, after=cursor)[0] == ["ext-5"]
    # The hunt's own publication bound still applies
    assert find({"published_within_days": 20}, 10)[0] == ["ext-1", "ext-2", "ext-3"]
