"""Scenario 7: bad input at the edges, on SQLite and on PostgreSQL.

Every operator command and import is given malformed, oversized, wrongly typed and hostile input:
template placeholders that try Python's format machinery, SQL-looking text, files of 50 MB and
lines of 10 MB, wrong encodings and NUL bytes, negative and zero limits, numbers no column holds,
unknown ids, wrong states, bad dates, time zones and cron expressions. Each must give one clear
line on stderr, a non-zero exit, no traceback, and change nothing: every table's row count and
content checksum are the same before and after.

The exhaustive table runs in-process through click's CliRunner; a representative set runs as real
`outreach` subprocesses, as an operator types them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from producers.cli import main
from storage import clock as clock_module
from storage.clock import FrozenClock
from storage.db import close_all, database, init_database, is_postgres
from storage.migrate import migrate
from storage.models import (
    Account,
    Campaign,
    Contact,
    ContactList,
    Hunt,
    MessageTemplate,
    OutboxMessage,
    User,
)
from storage.settings import get_settings
from tests.conftest import T0, _admin_execute, _pg_url
from tests.faults.figures import Figures
from tests.faults.procfile import run_cli
from tests.faults.services import new_database_name

pytestmark = [pytest.mark.postgres]

# Sizes of the oversized inputs.
HUGE_FILE_BYTES = 50 * 1024 * 1024
LONG_LINE_BYTES = 10 * 1024 * 1024
# More digits than Python turns into an int from text (JSON numbers included).
HUGE_DIGITS = "9" * 5_000
# Larger than any integer column (and than SQLite's 64-bit INTEGER).
TOO_BIG = "99999999999999999999999"
FORMAT_TRICKS = ("{0.__class__}", "{user.__init__.__globals__}", "{x!r:>99999999}")
SQL_LOOKING = "'; DROP TABLE contact; --"


# --- the database under test: seeded once per backend, compared around every command ----------


@dataclass(frozen=True)
class Seeded:
    backend: str
    url: str
    # Tokens the cases use in place of ids: <owner>, <draft>, <hunt>...
    ids: dict[str, int] = field(default_factory=dict)


def _seed() -> dict[str, int]:
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
    import_lines([json.dumps(_ad(1)).encode()], strict=True)
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


def _ad(n: int, **overrides: Any) -> dict[str, Any]:
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


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def seeded(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Seeded]:
    """A database of this module's own per backend, migrated and seeded once."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('bad-input')}/outreach.sqlite3"
    else:
        name = new_database_name()
        _admin_execute(f"CREATE DATABASE {name}")
        url = _pg_url(name)
    init_database(url)
    migrate()
    clock_module.set_clock(FrozenClock(T0))
    try:
        with database.connection_context():
            ids = _seed()
    finally:
        clock_module.set_clock(None)
    yield Seeded(request.param, url, ids)
    close_all()
    database.initialize(None)
    if name is not None:
        _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def on_seeded(seeded: Seeded, clock: FrozenClock) -> Iterator[Seeded]:
    init_database(seeded.url)
    with database.connection_context():
        yield seeded


def table_dump() -> dict[str, tuple[int, str]]:
    """(row count, content checksum) of every table in the database, migrations' own included."""
    dump = {}
    for table in sorted(database.get_tables()):
        if is_postgres():
            # The whole content as text, in a stable order, hashed by the server.
            count, digest = database.execute_sql(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                f' FROM "{table}" t'
            ).fetchone()
        else:
            rows = database.execute_sql(f'SELECT * FROM "{table}"').fetchall()
            count = len(rows)
            digest = hashlib.sha256(repr(sorted(repr(r) for r in rows)).encode()).hexdigest()
        dump[table] = (int(count), str(digest))
    return dump


# --- hostile files, written once ---------------------------------------------------------------


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=True).encode()


def _huge_json(name_bytes: int, **fields: Any) -> bytes:
    """A JSON object whose name is `name_bytes` long, written without building it twice."""
    head = _dumps(fields)[:-1]
    return head + b', "name": "' + b"x" * name_bytes + b'"}'


def _files(ids: dict[str, int]) -> dict[str, bytes]:
    owner = ids["owner"]
    campaign = {
        "owner_id": owner,
        "name": "From a file",
        "channel": "log",
        "contact_list": "customers",
        "template": "Hi {Name}",
    }
    hunt = {
        "owner_id": owner,
        "name": "From a file",
        "channels": ["log"],
        "credits": {"log": 5},
        "message_template": "Bonjour {owner_name}",
    }
    ok_csv_row = "+33622222222,Zoe\n"
    ad_line = _dumps(_ad(99))
    return {
        # contacts (CSV)
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
        # ads (JSON Lines)
        "utf16.jsonl": ad_line.decode().encode("utf-16") + b"\n",
        "latin1.jsonl": json.dumps(_ad(98, title="Citroën"), ensure_ascii=False).encode("latin-1"),
        "nul.jsonl": _dumps(_ad(97, title="Clio\x00")),
        "surrogate.jsonl": _dumps(_ad(96, title="Clio \ud800")),
        "nested.jsonl": b"[" * 100_000,
        "huge-number.jsonl": ad_line[:-1] + b', "price": ' + HUGE_DIGITS.encode() + b"}",
        "too-big-price.jsonl": _dumps(_ad(95, price=2**31)),
        "negative-price.jsonl": _dumps(_ad(94, price=-1)),
        "year-one.jsonl": _dumps(_ad(93, published_at="0001-01-01T00:00:00+01:00")),
        "bad-date.jsonl": _dumps(_ad(92, published_at="yesterday")),
        "sql-url.jsonl": _dumps(_ad(91, url=f"javascript:{SQL_LOOKING}")),
        "long-line.jsonl": _dumps(_ad(90, title="x" * LONG_LINE_BYTES)),
        # 50 MB of ads, every one refused (a title over 500 characters): all of it is read.
        "huge.jsonl": b"\n".join(
            _dumps(_ad(n, title="x" * 1_000)) for n in range(HUGE_FILE_BYTES // 1_200)
        ),
        "good-then-bad.jsonl": _dumps(_ad(89)) + b"\n" + _dumps(_ad(88, price="cheap")),
        # campaigns (JSON)
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
        # hunts (JSON)
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


@pytest.fixture(scope="module")
def files(seeded: Seeded, tmp_path_factory) -> dict[str, Path]:
    """Every hostile file, per backend (ids differ), written once."""
    folder = tmp_path_factory.mktemp(f"hostile-{seeded.backend}")
    paths = {}
    for name, content in _files(seeded.ids).items():
        path = folder / name
        path.write_bytes(content)
        paths[name] = path
    return paths


# --- the exhaustive table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A command and the refusal it must give: `fragment` is in the one stderr line."""

    args: tuple[str, ...]
    fragment: str
    exit_code: int = 2
    # Import rows refused one by one: the line names the row, not "error:".
    prefix: str = "error: "
    env: tuple[tuple[str, str], ...] = ()


def case(command: str, *extra: str, fragment: str, **options: Any) -> Case:
    """`command` is split on spaces; `extra` arguments are taken as they are (spaces, odd bytes)."""
    return Case((*command.split(), *extra), fragment, **options)


CREATE = "campaign create --owner <owner> --list customers --channel log"
GOOD = ("--name", "Summer", "--template", "Hi {Name}")
SEND = "outbox send --channel log --to x"

CASES: dict[str, Case] = {
    # Templates that try Python's format machinery, through the options and through files.
    **{
        f"campaign-template-trick-{n}": case(
            f"{CREATE} --name x --template", f"Hi {trick}", fragment="unknown placeholder"
        )
        for n, trick in enumerate((*FORMAT_TRICKS, "{Name!r}", "{Name.__class__}"))
    },
    **{
        f"hunt-template-trick-{n}": case(
            f"hunt create @hunt-trick-{n}.json", fragment="message template"
        )
        for n in range(6)
    },
    # Text no database stores: NUL bytes, and undecodable bytes (lone surrogates).
    "option-nul": case(f"{CREATE} --template Hi --name", "Sum\x00mer", fragment="NUL"),
    "option-surrogate": case(
        f"{CREATE} --template Hi --name", "Sum\udcffmer", fragment="not valid UTF-8"
    ),
    "outbox-send-nul": case(f"{SEND} --key k --body", "b\x00", fragment="NUL"),
    "list-name-surrogate": case(
        "contacts import", "caf\udce9", "@bad-rows.csv", fragment="not valid UTF-8"
    ),
    "resolve-reason-nul": case(
        "outbox resolve <unknown_row> --mark-sent --reason", "x\x00", fragment="NUL"
    ),
    # Too long.
    "campaign-name-long": case(f"{CREATE} --template Hi --name", "x" * 300, fragment="200"),
    "campaign-template-long": case(
        f"{CREATE} --name x --template", "x" * LONG_LINE_BYTES, fragment="4096"
    ),
    "outbox-key-long": case(f"{SEND} --body b --key", "k" * 300, fragment="1 to 255"),
    "outbox-body-long": case(
        "outbox send --channel log --to x --key k --body", "b" * 70_000, fragment="65536"
    ),
    "outbox-to-long": case(
        "outbox send --channel email --key k --body b --to", "a" * 400, fragment="320"
    ),
    "resolve-reason-long": case(
        "outbox resolve <unknown_row> --mark-sent --reason",
        "x" * LONG_LINE_BYTES,
        fragment="longer than 500",
    ),
    # Negative, zero and oversized limits.
    "campaign-limit-zero": case(CREATE, *GOOD, "--limit", "0", fragment="between 1 and"),
    "campaign-limit-negative": case(CREATE, *GOOD, "--limit", "-1", fragment="between 1 and"),
    "campaign-limit-huge": case(CREATE, *GOOD, "--limit", TOO_BIG, fragment="between 1 and"),
    "campaign-limit-fraction": case(CREATE, *GOOD, "--limit", "1.5", fragment="valid integer"),
    "review-limit-zero": case("outbox review --limit 0", fragment="at least 1"),
    "review-limit-negative": case("outbox review --limit -5", fragment="at least 1"),
    "review-limit-huge": case(f"outbox review --limit {TOO_BIG}", fragment="--limit"),
    "run-daily-timeout-negative": case("engagement run-daily --timeout -1", fragment="x>=0"),
    "run-daily-timeout-nan": case("engagement run-daily --timeout nan", fragment="not a number"),
    # Wrongly typed options.
    "owner-not-a-number": case(CREATE, *GOOD, "--owner", "abc", fragment="valid integer"),
    "campaign-id-not-a-number": case("campaign status seven", fragment="valid integer"),
    "campaign-id-zero": case("campaign status 0", fragment="not an id"),
    "unknown-channel": case(
        "campaign create --owner <owner> --list customers --channel sms",
        *GOOD,
        fragment="unknown channel 'sms'",
    ),
    "media-type": case(
        CREATE, *GOOD, "--media-url", "http://x/a.png", "--media-type", "png", fragment="MIME"
    ),
    "file-and-options": case(
        "campaign create --file @campaign-list.json --name x", fragment="not both"
    ),
    "file-is-a-directory": case("campaign create --file /", fragment="directory"),
    "missing-file": case("hunt create /no/such/hunt.json", fragment="cannot read"),
    # Ids no column holds.
    **{
        f"too-big-id-{'-'.join(command.split()[:2])}": case(command, fragment=fragment)
        for command, fragment in (
            (f"campaign status {TOO_BIG}", "too large for an id"),
            (f"campaign run {TOO_BIG} --as-user <owner>", "too large for an id"),
            (f"campaign pause {TOO_BIG}", "too large for an id"),
            (f"hunt run {TOO_BIG}", "too large for an id"),
            (f"hunt status {TOO_BIG}", "too large for an id"),
            (f"hunt resume {TOO_BIG}", "too large for an id"),
            (f"enqueue hunt {TOO_BIG}", "too large for an id"),
            (f"enqueue campaign {TOO_BIG}", "too large for an id"),
            (f"outbox resolve {TOO_BIG} --mark-sent --reason x", "too large for an id"),
            # Said per backend: "does not exist" (PostgreSQL), "a number is out of range".
            (f"engagement report {TOO_BIG}", ""),
            (f"engagement activity {TOO_BIG}", ""),
        )
    },
    "too-big-user": case(f"campaign run <draft> --as-user {TOO_BIG}", fragment="too large"),
    # Unknown ids, wrong owners and wrong states.
    "unknown-campaign": case("campaign run 999999 --as-user <owner>", fragment="999999"),
    "unknown-campaign-status": case("campaign status 999999", fragment="does not exist"),
    "unknown-campaign-enqueue": case("enqueue campaign 999999", fragment="does not exist"),
    "unknown-hunt": case("hunt run 999999", fragment="hunt 999999 does not exist"),
    "unknown-hunt-pause": case("hunt pause 999999", fragment="does not exist"),
    "unknown-hunt-enqueue": case("enqueue hunt 999999", fragment="does not exist"),
    "unknown-owner": case(
        "campaign create --owner 999999 --list customers --channel log",
        *GOOD,
        fragment="user 999999 does not exist",
    ),
    "unknown-list": case(
        "campaign create --owner <owner> --channel log --list",
        SQL_LOOKING,
        *GOOD,
        fragment="does not exist",
    ),
    "unknown-template-id": case(
        f"{CREATE} --name x --template-id 999999", fragment="template 999999"
    ),
    "template-of-another-user": case(
        "campaign create --owner <other> --list customers --channel log --name x"
        " --template-id <template>",
        fragment="belongs to another user",
    ),
    "unknown-outbox-row": case(
        "outbox resolve 999999 --resend --reason x", fragment="does not exist"
    ),
    "unknown-run": case("engagement report 999999", fragment="does not exist"),
    "unknown-user": case("engagement activity 999999", fragment="does not exist"),
    "not-the-owner": case("campaign run <draft> --as-user <other>", fragment="does not own"),
    "pause-a-draft": case("campaign pause <draft>", fragment="draft"),
    "resume-a-cancelled": case("campaign resume <cancelled>", fragment="cancelled"),
    "run-a-cancelled": case("campaign run <cancelled> --as-user <owner>", fragment="cancelled"),
    "resume-an-archived-hunt": case("hunt resume <archived>", fragment="archived"),
    "resolve-a-sent-row": case(
        "outbox resolve <sent_row> --resend --reason x", fragment="not unknown"
    ),
    "resolve-without-reason": case("outbox resolve <unknown_row> --mark-sent", fragment="reason"),
    "resolve-both-ways": case(
        "outbox resolve <unknown_row> --mark-sent --resend --reason x",
        fragment="--mark-sent or --resend",
    ),
    "answer-not-a-choice": case("engagement answer <owner> maybe", fragment="'maybe'"),
    "answer-unknown-user": case("engagement answer 999999 stop", fragment="does not exist"),
    "answer-without-goodbye": case(
        "engagement answer <owner> remind-later", fragment="never sent a goodbye"
    ),
    "answer-remind-in-negative-days": case(
        "engagement answer <owner> remind-later --remind-in-days -1", fragment="remind"
    ),
    "answer-remind-in-too-many-days": case(
        "engagement answer <owner> remind-later --remind-in-days 100000", fragment="365"
    ),
    "dlq-without-redis": case("dlq requeue --all", fragment="REDIS_URL"),
    "dlq-id-and-all": case("dlq requeue x --all", fragment="MESSAGE_ID or --all"),
    # Bad dates, time zones and cron expressions.
    **{
        f"start-at-{n}": case(CREATE, *GOOD, "--start-at", value, fragment="ISO 8601")
        for n, value in enumerate(
            ("yesterday", "2026-13-45T99:00", "2026-03-02T10:00+25:00", "0001-01-01T00:00+01:00")
        )
    },
    "tick-in-the-future": case("campaign tick --at 2999-01-01T00:00", fragment="future"),
    "tick-garbage": case("campaign tick --at garbage", fragment="ISO 8601"),
    "tick-year-one": case("campaign tick --at 0001-01-01T00:00+01:00", fragment="ISO"),
    "sweep-in-the-future": case("hunt sweep --at 2999-01-01", fragment="future"),
    "sweep-garbage": case("hunt sweep --at garbage", fragment="ISO date-time"),
    "sweep-year-one": case("hunt sweep --at 0001-01-01T00:00+01:00", fragment="ISO"),
    "sweep-bad-offset": case("hunt sweep --at 2026-03-02T10:00+99:00", fragment="ISO"),
    **{
        f"setting-{variable}-{n}": case("status --json", fragment=value, env=((variable, value),))
        for n, (variable, value) in enumerate(
            (
                ("OUTREACH_ENGAGEMENT_CRON", "61 * * * *"),
                ("OUTREACH_CAMPAIGNS_CRON", "every day"),
                ("OUTREACH_HUNTS_CRON", "0 8 31 2 *"),
                ("OUTREACH_HUNTS_TIMEZONE", "Mars/Olympus"),
                ("OUTREACH_HUNTS_TIMEZONE", "../../etc/passwd"),
                ("OUTREACH_CHANNEL_TIMEOUT", "soon"),
            )
        )
    },
    # Contacts imports: whole files refused...
    **{
        f"contacts-{name}": case(f"contacts import customers @{name}", fragment=fragment)
        for name, fragment in (
            ("utf16.csv", "UTF-8"),
            ("latin1.csv", "UTF-8"),
            ("nul-header.csv", "unknown column"),
            ("bad-header.csv", "unknown column 'ssn'"),
            ("no-phone-column.csv", "phone or an email"),
            ("empty.csv", "empty"),
            ("long-line.csv", "field limit"),
            ("huge.csv", "malformed"),
        )
    },
    "contacts-empty-list-name": case("contacts import", " ", "@bad-rows.csv", fragment="1 to"),
    "contacts-missing-file": case("contacts import customers /no/such.csv", fragment="cannot read"),
    # ...and rows refused one by one (exit 1; the good rows would be in, but there are none).
    **{
        f"contacts-rows-{name}": case(
            "contacts import",
            list_name,
            f"@{name}",
            fragment=fragment,
            exit_code=1,
            prefix="line 2: ",
        )
        for list_name, name, fragment in (
            ("customers", "nul-row.csv", "NUL"),
            ("customers", "unclosed-quote.csv", "expected 2 fields"),
            ("brand new list", "bad-rows.csv", "not a phone number"),
        )
    },
    # Ads imports (strict: any bad line imports nothing).
    **{
        f"ads-{name}": case(f"ads import --strict @{name}", fragment=fragment)
        for name, fragment in (
            ("utf16.jsonl", "not UTF-8"),
            ("latin1.jsonl", "not UTF-8"),
            ("nul.jsonl", "NUL"),
            ("surrogate.jsonl", "not valid Unicode"),
            ("nested.jsonl", "nested too deeply"),
            ("huge-number.jsonl", "number is too long"),
            ("too-big-price.jsonl", "at most"),
            ("negative-price.jsonl", "0 or more"),
            ("year-one.jsonl", "not an ISO date-time"),
            ("bad-date.jsonl", "not an ISO date-time"),
            ("sql-url.jsonl", "http"),
            ("long-line.jsonl", "longer than 500"),
            ("huge.jsonl", "nothing imported"),
            ("good-then-bad.jsonl", "nothing imported"),
        )
    },
    "ads-missing-file": case("ads import /no/such.jsonl", fragment="cannot read"),
    # Campaign files.
    **{
        f"campaign-file-{name}": case(f"campaign create --file @{name}", fragment=fragment)
        for name, fragment in (
            ("campaign-list.json", "JSON object"),
            ("campaign-utf16.json", "UTF-8"),
            ("campaign-latin1.json", "UTF-8"),
            ("campaign-nul.json", "NUL"),
            ("campaign-surrogate.json", "not valid UTF-8"),
            ("campaign-nested.json", "nested too deeply"),
            ("campaign-huge-number.json", "number is too long"),
            ("campaign-big-owner.json", "not an id"),
            ("campaign-big-list.json", "not an id"),
            ("campaign-big-template-id.json", "not an id"),
            ("campaign-owner-text.json", "whole number"),
            ("campaign-limit-inf.json", "whole number"),
            ("campaign-limit-negative.json", "between 1 and"),
            ("campaign-unknown-field.json", "is_admin"),
            ("campaign-start-number.json", "ISO 8601"),
            ("campaign-long-template.json", "4096"),
            ("campaign-huge.json", "longer than 200"),
        )
    },
    # Hunt files.
    **{
        f"hunt-file-{name}": case(f"hunt create @{name}", fragment=fragment)
        for name, fragment in (
            ("hunt-utf16.json", "UTF-8"),
            ("hunt-nul.json", "NUL"),
            ("hunt-surrogate.json", "not valid UTF-8"),
            ("hunt-nested.json", "nested too deeply"),
            ("hunt-huge-number.json", "number is too long"),
            ("hunt-big-owner.json", "positive id"),
            ("hunt-big-credits.json", "at most"),
            ("hunt-big-pacing.json", "at most"),
            ("hunt-big-price.json", "at most"),
            ("hunt-negative-pacing.json", "0 or more"),
            ("hunt-negative-credits.json", "0 or more"),
            ("hunt-negative-days.json", "0 or more"),
            ("hunt-channels-text.json", "non-empty list"),
            ("hunt-credits-list.json", "credits"),
            ("hunt-refresh-text.json", "true or false"),
            ("hunt-archived.json", "status"),
            ("hunt-criteria-text.json", "criteria must be an object"),
            ("hunt-criteria-unknown.json", "unknown key 'where'"),
            ("hunt-bad-since.json", "not an ISO date"),
            ("hunt-year-one.json", "not an ISO date"),
            ("hunt-price-range.json", "above price_max"),
            ("hunt-unknown-owner.json", "does not exist"),
            ("hunt-not-member.json", "not a member"),
            ("hunt-unknown-channel.json", "unknown channel"),
            ("hunt-long-template.json", "longer than"),
            ("hunt-huge.json", "name must be"),
        )
    },
}


def _resolve(args: tuple[str, ...], seeded: Seeded, files: dict[str, Path]) -> list[str]:
    resolved = []
    for arg in args:
        if arg.startswith("@") and arg[1:] in files:
            arg = str(files[arg[1:]])
        for token, value in seeded.ids.items():
            arg = arg.replace(f"<{token}>", str(value))
        resolved.append(arg)
    return resolved


def assert_one_line_refusal(
    exit_code: int, stdout: str, stderr: str, want: Case, *, where: str
) -> None:
    """Exactly one line on stderr (prefix, fragment), the expected exit status, no traceback."""
    assert "Traceback" not in stdout + stderr, f"{where}: a traceback\n{stderr[-3000:]}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{where}: expected one line on stderr, got {lines[:5]!r}"
    assert lines[0].startswith(want.prefix), f"{where}: {lines[0]!r}"
    assert want.fragment in lines[0], f"{where}: {want.fragment!r} not in {lines[0]!r}"
    assert exit_code == want.exit_code, f"{where}: exit {exit_code}, stderr {lines[0]!r}"


@pytest.fixture(scope="module")
def refusals() -> Iterator[list[str]]:
    """Every refusal checked in this module, counted in the session's figures."""
    checked: list[str] = []
    yield checked
    from tests.faults.figures import FIGURES

    FIGURES.record(
        Figures(
            "7 bad input",
            sent=0,
            duplicates=0,
            lost=0,
            unknown=0,
            note=f"{len(checked)} refusals, each one line, nothing written",
        )
    )


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(
    name: str, on_seeded: Seeded, files: dict[str, Path], env, refusals: list[str]
):
    want = CASES[name]
    for variable, value in want.env:
        env.setenv(variable, value)
    # Given the database as it is
    before = table_dump()
    # When the command is given the bad input
    result: Result = CliRunner().invoke(main, _resolve(want.args, on_seeded, files))
    # Then it is one clear line and a non-zero exit, and no table changed by a single row
    assert_one_line_refusal(
        result.exit_code, result.stdout, result.stderr, want, where=f"{name} ({on_seeded.backend})"
    )
    assert table_dump() == before
    refusals.append(f"{on_seeded.backend}:{name}")
    get_settings.cache_clear()


# --- as an operator types them: real `outreach` processes --------------------------------------

SUBPROCESS_CASES: dict[str, Case] = {
    # A name typed in a latin-1 terminal: the byte 0xE9 is not UTF-8.
    "argument-not-utf8": case(
        "contacts import", os.fsdecode(b"caf\xe9"), "@bad-rows.csv", fragment="not valid UTF-8"
    ),
    "template-format-trick": case(
        f"{CREATE} --name x --template", "Hi {0.__class__}", fragment="unknown placeholder"
    ),
    "id-too-big": case(f"campaign status {TOO_BIG}", fragment="too large for an id"),
    "contacts-utf16": CASES["contacts-utf16.csv"],
    "ads-50-mb": CASES["ads-huge.jsonl"],
    "hunt-nested": CASES["hunt-file-hunt-nested.json"],
    "sweep-year-one": CASES["sweep-year-one"],
    "review-limit-negative": CASES["review-limit-negative"],
}


@pytest.mark.parametrize("name", list(SUBPROCESS_CASES))
def test_bad_input_through_the_console_script(
    name: str, on_seeded: Seeded, files: dict[str, Path], refusals: list[str]
):
    want = SUBPROCESS_CASES[name]
    env = {**os.environ, "DATABASE_URL": on_seeded.url, "OUTREACH_LOG_LEVEL": "WARNING"}
    for variable in ("REDIS_URL", "OUTREACH_CLOCK"):
        env.pop(variable, None)
    before = table_dump()
    done = run_cli(env, *_resolve(want.args, on_seeded, files), timeout=120)
    assert_one_line_refusal(
        done.returncode, done.stdout, done.stderr, want, where=f"{name} ({on_seeded.backend})"
    )
    assert table_dump() == before
    refusals.append(f"{on_seeded.backend}:process:{name}")


# --- hostile text that is valid input: stored and sent verbatim, harmlessly ----------------------


def test_sql_looking_and_format_looking_text_is_stored_and_sent_verbatim(db, clock, tmp_path):
    # Given contacts whose names look like SQL and like format strings, in a list named like SQL
    list_name = "Robert'); DROP TABLE contact_list;--"
    names = [SQL_LOOKING, "{0.__class__}", "{Name}", "%s%s%s", "\\1 $1"]
    csv = "phone,first_name\n" + "".join(
        f'+3361000000{n},"{name}"\n' for n, name in enumerate(names)
    )
    (tmp_path / "contacts.csv").write_text(csv)
    runner = CliRunner()
    owner = User.create(
        account=Account.create(name="Bakery", created_at=clock.now()),
        name="Alice",
        created_at=clock.now(),
    )
    tables = set(database.get_tables())
    imported = runner.invoke(
        main, ["contacts", "import", list_name, str(tmp_path / "contacts.csv")]
    )
    assert imported.exit_code == 0, imported.output
    # And a campaign and a hunt whose own text looks like SQL
    template = "Hi {Name}; '; DELETE FROM outbox_message; --"
    created = runner.invoke(
        main,
        [
            "campaign", "create", "--owner", str(owner.id), "--name", "x'; DROP TABLE campaign;--",
            "--list", list_name, "--channel", "log", "--template", template,
            "--limit", "10", "--json",
        ],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    campaign_id = json.loads(created.stdout)["id"]
    hunt_file = tmp_path / "hunt.json"
    hunt_file.write_text(
        json.dumps(
            {
                "owner_id": owner.id,
                "name": "'; DROP TABLE hunt; --",
                "channels": ["log"],
                "credits": {"log": 1},
                "message_template": "{{0.__class__}} {title}",
                "criteria": {"keywords": ["' OR 1=1 --"]},
            }
        )
    )
    assert runner.invoke(main, ["hunt", "create", str(hunt_file)]).exit_code == 0
    # When the campaign runs (embedded mode: this process sends through the log channel)
    ran = runner.invoke(main, ["campaign", "run", str(campaign_id), "--as-user", str(owner.id)])
    assert ran.exit_code == 0, ran.output
    # Then every table is still there, and the text went in and out exactly as written
    assert set(database.get_tables()) == tables
    assert ContactList.get().name == list_name
    assert sorted(c.first_name for c in Contact.select()) == sorted(names)
    assert Campaign.get_by_id(campaign_id).name == "x'; DROP TABLE campaign;--"
    bodies = sorted(row.body for row in OutboxMessage.select())
    tail = "; '; DELETE FROM outbox_message; --"
    assert bodies == sorted(f"Hi {name}{tail}" for name in names)
    assert {row.status for row in OutboxMessage.select()} == {"sent"}
    hunt = Hunt.get()
    assert (hunt.name, hunt.criteria) == ("'; DROP TABLE hunt; --", {"keywords": ["' OR 1=1 --"]})
