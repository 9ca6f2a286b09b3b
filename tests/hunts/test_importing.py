"""Importing the scraper's ads: upsert on (source, external_id), invalid lines reported by
number and skipped, all or nothing."""

from __future__ import annotations

import json

import pytest

from storage.errors import InvalidInput
from storage.models import Ad
from worker.hunts import importing
from worker.hunts.importing import import_file, import_lines


def ad_json(n: int, **overrides) -> dict:
    data = {
        "source": "leboncoin",
        "external_id": str(1000 + n),
        "title": f"Renault Clio {n}",
        "price": 8900,
        "location": {"postal_code": "75011", "city": "Paris"},
        "category": "voitures",
        "sub_type": "Citadine",
        "brand": "Renault",
        "owner": {"name": "Jean", "phone": "+33 6 12 34 56 78", "email": "jean@example.com"},
        "url": f"https://www.leboncoin.fr/ad/voitures/{1000 + n}",
        "published_at": "2026-03-01T08:15:00Z",
    }
    data.update(overrides)
    return data


def lines(*records) -> list[bytes]:
    return [(r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in records]


def test_a_file_of_ads_is_imported(db, clock, tmp_path):
    path = tmp_path / "ads.jsonl"
    path.write_bytes(b"".join(lines(ad_json(1), ad_json(2))))
    report = import_file(path)
    assert report.as_dict() == {
        "lines": 2,
        "written": 2,
        "invalid": 0,
        "errors": [],
        "errors_not_shown": 0,
    }
    ad = Ad.get(Ad.external_id == "1001")
    # Normalised: sub-type and brand lower-cased, the phone without separators, times in UTC
    assert (ad.sub_type, ad.brand, ad.owner_phone) == ("citadine", "renault", "+33612345678")
    assert (ad.postal_code, ad.city, ad.price) == ("75011", "Paris", 8900)
    assert ad.published_at.isoformat() == "2026-03-01T08:15:00+00:00"


def test_importing_again_updates_in_place(db, clock):
    import_lines(lines(ad_json(1), ad_json(2)))
    first_id = Ad.get(Ad.external_id == "1001").id
    # The scraper saw ad 1 again with a new price, and a new ad 3
    report = import_lines(lines(ad_json(1, price=7500), ad_json(3)))
    assert report.written == 2
    assert Ad.select().count() == 3
    updated = Ad.get(Ad.external_id == "1001")
    assert (updated.id, updated.price) == (first_id, 7500)


def test_the_same_external_id_from_another_source_is_another_ad(db, clock):
    import_lines(lines(ad_json(1), ad_json(1, source="autre")))
    assert Ad.select().count() == 2


def test_a_repeated_ad_in_one_file_keeps_its_last_line(db, clock):
    report = import_lines(lines(ad_json(1, price=1), ad_json(1, price=2)))
    assert report.invalid == 0
    assert Ad.get().price == 2


def test_invalid_lines_are_reported_with_their_numbers_and_skipped(db, clock):
    report = import_lines(
        [
            *lines(
                ad_json(1),
                "{not json",
                ad_json(3, location={"postal_code": "7501"}),
                ad_json(4, owner={"name": "No contact"}),
                ad_json(5, price=-3),
                ad_json(6, published_at="yesterday"),
                "",
                '["a list"]',
                ad_json(9),
            ),
            b"\xff\xfe\n",
        ]
    )
    assert report.written == 2
    assert report.errors == [
        "line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        "line 3: location.postal_code must be 5 digits (got '7501')",
        "line 4: owner needs a phone or an email",
        "line 5: price must be a whole number of euros, 0 or more (got -3)",
        "line 6: published_at 'yesterday' is not an ISO date-time",
        "line 8: an ad must be a JSON object",
        "line 10: not UTF-8 text",
    ]
    # The valid lines are in; nothing of the invalid ones
    assert sorted(a.external_id for a in Ad.select()) == ["1001", "1009"]


def test_strict_import_with_an_invalid_line_imports_nothing(db, clock):
    with pytest.raises(InvalidInput, match="1 invalid line"):
        import_lines(lines(ad_json(1), ad_json(2), "nope"), strict=True, batch_size=1)
    assert Ad.select().count() == 0


def test_a_failure_mid_import_leaves_no_half_written_file(db, clock, monkeypatch):
    # Given a database write that fails on the third batch
    real_write = importing._write
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise RuntimeError("connection lost")
        real_write(batch)

    monkeypatch.setattr(importing, "_write", flaky)
    with pytest.raises(RuntimeError):
        import_lines(lines(*[ad_json(n) for n in range(10)]), batch_size=2)
    # Then the two batches already written are rolled back too
    assert calls == [2, 2, 2]
    assert Ad.select().count() == 0


def test_many_lines_stream_through_in_batches(db, clock):
    # More lines than a batch: several statements, one transaction, every ad in
    report = import_lines((json.dumps(ad_json(n)).encode() for n in range(25)), batch_size=10)
    assert report.written == 25
    assert Ad.select().count() == 25


def test_errors_beyond_the_report_limit_are_counted(db, clock, monkeypatch):
    monkeypatch.setattr(importing, "MAX_REPORTED_ERRORS", 3)
    report = import_lines(lines(*["x"] * 5))
    assert report.invalid == 5
    assert len(report.errors) == 3
    assert report.as_dict()["errors_not_shown"] == 2


def test_a_missing_file_is_refused(db, clock, tmp_path):
    with pytest.raises(InvalidInput, match="cannot read"):
        import_file(tmp_path / "missing.jsonl")


def test_an_unchanged_ad_keeps_its_updated_at(db, clock):
    from datetime import timedelta

    import_lines(lines(ad_json(1), ad_json(2)))
    clock.advance(timedelta(hours=1))
    import_lines(lines(ad_json(1), ad_json(2, title="New title")))
    times = {a.external_id: a.updated_at for a in Ad.select()}
    assert times["1001"] == clock.now() - timedelta(hours=1)
    assert times["1002"] == clock.now()
