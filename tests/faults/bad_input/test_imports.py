"""Bad input to the imports: `contacts import` (CSV, whole files and rows refused one by one) and
`ads import --strict` (JSON Lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.bad_input.cases import Case, case, refuse_in_process
from tests.faults.bad_input.hostile_files import ad_files, contact_files
from tests.faults.bad_input.seeding import Seeded

pytestmark = [pytest.mark.postgres]

HOSTILE_FILES = (
    contact_files,
    ad_files,
)

CASES: dict[str, Case] = {
    # Text no database stores: NUL bytes, and undecodable bytes (lone surrogates).
    "list-name-surrogate": case(
        "contacts import", "caf\udce9", "@bad-rows.csv", fragment="not valid UTF-8"
    ),
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
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(
    name: str, on_seeded: Seeded, files: dict[str, Path], env, refusals: list[str]
):
    refuse_in_process(name, CASES[name], on_seeded, files, env)
    refusals.append(f"{on_seeded.backend}:{name}")
