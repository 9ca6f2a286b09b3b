"""Bad input as an operator types it: a representative set of the cases run as real `outreach`
processes (arguments as the terminal's bytes, the console script's own error handling)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.bad_input import test_campaigns, test_hunts, test_imports, test_outbox
from tests.faults.bad_input.cases import (
    TOO_BIG,
    Case,
    assert_one_line_refusal,
    case,
    resolve,
    table_dump,
)
from tests.faults.bad_input.hostile_files import ad_files, contact_files, hunt_files
from tests.faults.bad_input.seeding import Seeded
from tests.faults.procfile import run_cli

pytestmark = [pytest.mark.postgres]

HOSTILE_FILES = (contact_files, ad_files, hunt_files)
CREATE = test_campaigns.CREATE

SUBPROCESS_CASES: dict[str, Case] = {
    # A name typed in a latin-1 terminal: the byte 0xE9 is not UTF-8.
    "argument-not-utf8": case(
        "contacts import", os.fsdecode(b"caf\xe9"), "@bad-rows.csv", fragment="not valid UTF-8"
    ),
    "template-format-trick": case(
        f"{CREATE} --name x --template", "Hi {0.__class__}", fragment="unknown placeholder"
    ),
    "id-too-big": case(f"campaign status {TOO_BIG}", fragment="too large for an id"),
    "contacts-utf16": test_imports.CASES["contacts-utf16.csv"],
    "ads-50-mb": test_imports.CASES["ads-huge.jsonl"],
    "hunt-nested": test_hunts.CASES["hunt-file-hunt-nested.json"],
    "sweep-year-one": test_hunts.CASES["sweep-year-one"],
    "review-limit-negative": test_outbox.CASES["review-limit-negative"],
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
    done = run_cli(env, *resolve(want.args, on_seeded, files), timeout=120)
    assert_one_line_refusal(
        done.returncode, done.stdout, done.stderr, want, where=f"{name} ({on_seeded.backend})"
    )
    assert table_dump() == before
    refusals.append(f"{on_seeded.backend}:process:{name}")
