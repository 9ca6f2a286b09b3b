"""Hostile files, one builder per kind of file a command reads: contacts (CSV), ads (JSON Lines),
campaigns and hunts (JSON). Wrong encodings, NUL bytes, lone surrogates, deep nesting, numbers no
column holds, lines of 10 MB and files of 50 MB."""

from __future__ import annotations

import json
from typing import Any

from tests.faults.bad_input.cases import (
    FORMAT_TRICKS,
    HUGE_DIGITS,
    HUGE_FILE_BYTES,
    LONG_LINE_BYTES,
    SQL_LOOKING,
    TOO_BIG,
)
from tests.faults.bad_input.seeding import sample_ad


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=True).encode()


def _huge_json(name_bytes: int, **fields: Any) -> bytes:
    """A JSON object whose name is `name_bytes` long, written without building it twice."""
    head = _dumps(fields)[:-1]
    return head + b', "name": "' + b"x" * name_bytes + b'"}'


def contact_files(ids: dict[str, int]) -> dict[str, bytes]:
    ok_csv_row = "+33622222222,Zoe\n"
    return {
        "utf16.csv": ("phone,first_name\n" + ok_csv_row).encode("utf-16"),
        "latin1.csv": ("phone,first_name\n+33622222222,Jérôme\n").encode("latin-1"),
        "nul-row.csv": b"phone,first_name\n+33622222222,Zo\x00e\n",
        "nul-header.csv": b"pho\x00ne\n+33622222222\n",
        "bad-header.csv": b"phone,ssn\n+33622222222,123\n",
        "no-phone-column.csv": b"first_name\nZoe\n",
        "empty.csv": b"",
        "bad-rows.csv": b"phone,first_name\nnot-a-phone,\xc3\x89mile\n",
        "unclosed-quote.csv": b'phone,first_name\n"+33622222222,Zoe\n',
        "long-line.csv": b"phone\n" + b"9" * LONG_LINE_BYTES + b"\n",
        "huge.csv": b'phone,first_name\n"' + b"x" * HUGE_FILE_BYTES,
    }


def ad_files(ids: dict[str, int]) -> dict[str, bytes]:
    ad_line = _dumps(sample_ad(99))
    return {
        "utf16.jsonl": ad_line.decode().encode("utf-16") + b"\n",
        "latin1.jsonl": json.dumps(sample_ad(98, title="Citroën"), ensure_ascii=False).encode(
            "latin-1"
        ),
        "nul.jsonl": _dumps(sample_ad(97, title="Clio\x00")),
        "surrogate.jsonl": _dumps(sample_ad(96, title="Clio \ud800")),
        "nested.jsonl": b"[" * 100_000,
        "huge-number.jsonl": ad_line[:-1] + b', "price": ' + HUGE_DIGITS.encode() + b"}",
        "too-big-price.jsonl": _dumps(sample_ad(95, price=2**31)),
        "negative-price.jsonl": _dumps(sample_ad(94, price=-1)),
        "year-one.jsonl": _dumps(sample_ad(93, published_at="0001-01-01T00:00:00+01:00")),
        "bad-date.jsonl": _dumps(sample_ad(92, published_at="yesterday")),
        "sql-url.jsonl": _dumps(sample_ad(91, url=f"javascript:{SQL_LOOKING}")),
        "long-line.jsonl": _dumps(sample_ad(90, title="x" * LONG_LINE_BYTES)),
        # 50 MB of ads, every one refused (a title over 500 characters): all of it is read.
        "huge.jsonl": b"\n".join(
            _dumps(sample_ad(n, title="x" * 1_000)) for n in range(HUGE_FILE_BYTES // 1_200)
        ),
        "good-then-bad.jsonl": _dumps(sample_ad(89)) + b"\n" + _dumps(sample_ad(88, price="cheap")),
    }


def campaign_files(ids: dict[str, int]) -> dict[str, bytes]:
    owner = ids["owner"]
    campaign = {
        "owner_id": owner,
        "name": "From a file",
        "channel": "log",
        "contact_list": "customers",
        "template": "Hi {Name}",
    }
    return {
        "campaign-list.json": b"[1, 2]",
        "campaign-utf16.json": _dumps(campaign).decode().encode("utf-16"),
        "campaign-latin1.json": json.dumps({**campaign, "name": "Été"}, ensure_ascii=False).encode(
            "latin-1"
        ),
        "campaign-nul.json": _dumps({**campaign, "name": "Spring\x00"}),
        "campaign-surrogate.json": _dumps({**campaign, "template": "Hi \udcff {Name}"}),
        "campaign-nested.json": b"[" * 100_000,
        "campaign-huge-number.json": _dumps(campaign)[:-1]
        + b', "media_id": '
        + HUGE_DIGITS.encode()
        + b"}",
        "campaign-big-owner.json": _dumps({**campaign, "owner_id": int(TOO_BIG)}),
        "campaign-big-list.json": _dumps({**campaign, "contact_list": int(TOO_BIG)}),
        "campaign-big-template-id.json": _dumps(
            {**{k: v for k, v in campaign.items() if k != "template"}, "template_id": int(TOO_BIG)}
        ),
        "campaign-owner-text.json": _dumps({**campaign, "owner_id": str(owner)}),
        "campaign-limit-inf.json": _dumps(campaign)[:-1] + b', "daily_send_limit": 1e999}',
        "campaign-limit-negative.json": _dumps({**campaign, "daily_send_limit": -5}),
        "campaign-unknown-field.json": _dumps({**campaign, "is_admin": True}),
        "campaign-start-number.json": _dumps({**campaign, "start_at": 12}),
        "campaign-long-template.json": _dumps({**campaign, "template": "x" * LONG_LINE_BYTES}),
        "campaign-huge.json": _huge_json(
            HUGE_FILE_BYTES, **{k: v for k, v in campaign.items() if k != "name"}
        ),
    }


def hunt_files(ids: dict[str, int]) -> dict[str, bytes]:
    hunt = {
        "owner_id": ids["owner"],
        "name": "From a file",
        "channels": ["log"],
        "credits": {"log": 5},
        "message_template": "Bonjour {owner_name}",
    }
    return {
        "hunt-utf16.json": _dumps(hunt).decode().encode("utf-16"),
        "hunt-nul.json": _dumps({**hunt, "message_template": "Bonjour\x00"}),
        "hunt-surrogate.json": _dumps({**hunt, "criteria": {"keywords": ["clio\ud800"]}}),
        "hunt-nested.json": b"[" * 100_000,
        "hunt-huge-number.json": _dumps(hunt)[:-1]
        + b', "daily_pacing_limit": '
        + HUGE_DIGITS.encode()
        + b"}",
        "hunt-big-owner.json": _dumps({**hunt, "owner_id": int(TOO_BIG)}),
        "hunt-big-credits.json": _dumps({**hunt, "credits": {"log": 2**31}}),
        "hunt-big-pacing.json": _dumps({**hunt, "daily_pacing_limit": 2**31}),
        "hunt-big-price.json": _dumps({**hunt, "criteria": {"price_min": int(TOO_BIG)}}),
        "hunt-negative-pacing.json": _dumps({**hunt, "daily_pacing_limit": -1}),
        "hunt-negative-credits.json": _dumps({**hunt, "credits": {"log": -1}}),
        "hunt-negative-days.json": _dumps({**hunt, "criteria": {"published_within_days": -3}}),
        "hunt-channels-text.json": _dumps({**hunt, "channels": "log"}),
        "hunt-credits-list.json": _dumps({**hunt, "credits": [5]}),
        "hunt-refresh-text.json": _dumps({**hunt, "auto_refresh": "yes"}),
        "hunt-archived.json": _dumps({**hunt, "status": "archived"}),
        "hunt-criteria-text.json": _dumps({**hunt, "criteria": "corrupt"}),
        "hunt-criteria-unknown.json": _dumps({**hunt, "criteria": {"where": "1=1"}}),
        "hunt-bad-since.json": _dumps({**hunt, "criteria": {"published_since": "2026-13-01"}}),
        "hunt-year-one.json": _dumps(
            {**hunt, "criteria": {"published_since": "0001-01-01T00:00+01:00"}}
        ),
        "hunt-price-range.json": _dumps({**hunt, "criteria": {"price_min": 10, "price_max": 5}}),
        "hunt-unknown-owner.json": _dumps({**hunt, "owner_id": 999_999}),
        "hunt-not-member.json": _dumps({**hunt, "account_id": 999_999}),
        "hunt-unknown-channel.json": _dumps({**hunt, "channels": ["sms"], "credits": {"sms": 1}}),
        "hunt-long-template.json": _dumps({**hunt, "message_template": "x" * LONG_LINE_BYTES}),
        **{
            f"hunt-trick-{n}.json": _dumps({**hunt, "message_template": f"Hi {trick}"})
            for n, trick in enumerate(
                (*FORMAT_TRICKS, "{title.__class__}", "{title!r:>99999999}", "{0}")
            )
        },
        "hunt-huge.json": _huge_json(
            HUGE_FILE_BYTES, **{k: v for k, v in hunt.items() if k != "name"}
        ),
    }
