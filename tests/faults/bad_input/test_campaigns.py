"""Bad input to the campaign commands: `campaign create` by options and by file, `run`, `status`,
`pause`, `resume`, `tick`, and `enqueue campaign`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.bad_input.cases import (
    FORMAT_TRICKS,
    LONG_LINE_BYTES,
    SQL_LOOKING,
    TOO_BIG,
    Case,
    case,
    refuse_in_process,
    too_big_ids,
)
from tests.faults.bad_input.hostile_files import campaign_files
from tests.faults.bad_input.seeding import Seeded

pytestmark = [pytest.mark.postgres]

HOSTILE_FILES = (campaign_files,)

CREATE = "campaign create --owner <owner> --list customers --channel log"
GOOD = ("--name", "Summer", "--template", "Hi {Name}")

CASES: dict[str, Case] = {
    # Templates that try Python's format machinery, through the options and through files.
    **{
        f"campaign-template-trick-{n}": case(
            f"{CREATE} --name x --template", f"Hi {trick}", fragment="unknown placeholder"
        )
        for n, trick in enumerate((*FORMAT_TRICKS, "{Name!r}", "{Name.__class__}"))
    },
    # Text no database stores: NUL bytes, and undecodable bytes (lone surrogates).
    "option-nul": case(f"{CREATE} --template Hi --name", "Sum\x00mer", fragment="NUL"),
    "option-surrogate": case(
        f"{CREATE} --template Hi --name", "Sum\udcffmer", fragment="not valid UTF-8"
    ),
    # Too long.
    "campaign-name-long": case(f"{CREATE} --template Hi --name", "x" * 300, fragment="200"),
    "campaign-template-long": case(
        f"{CREATE} --name x --template", "x" * LONG_LINE_BYTES, fragment="4096"
    ),
    # Negative, zero and oversized limits.
    "campaign-limit-zero": case(CREATE, *GOOD, "--limit", "0", fragment="between 1 and"),
    "campaign-limit-negative": case(CREATE, *GOOD, "--limit", "-1", fragment="between 1 and"),
    "campaign-limit-huge": case(CREATE, *GOOD, "--limit", TOO_BIG, fragment="between 1 and"),
    "campaign-limit-fraction": case(CREATE, *GOOD, "--limit", "1.5", fragment="valid integer"),
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
    # Ids no column holds.
    **too_big_ids(
        (f"campaign status {TOO_BIG}", "too large for an id"),
        (f"campaign run {TOO_BIG} --as-user <owner>", "too large for an id"),
        (f"campaign pause {TOO_BIG}", "too large for an id"),
        (f"enqueue campaign {TOO_BIG}", "too large for an id"),
    ),
    "too-big-user": case(f"campaign run <draft> --as-user {TOO_BIG}", fragment="too large"),
    # Unknown ids, wrong owners and wrong states.
    "unknown-campaign": case("campaign run 999999 --as-user <owner>", fragment="999999"),
    "unknown-campaign-status": case("campaign status 999999", fragment="does not exist"),
    "unknown-campaign-enqueue": case("enqueue campaign 999999", fragment="does not exist"),
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
    "not-the-owner": case("campaign run <draft> --as-user <other>", fragment="does not own"),
    "pause-a-draft": case("campaign pause <draft>", fragment="draft"),
    "resume-a-cancelled": case("campaign resume <cancelled>", fragment="cancelled"),
    "run-a-cancelled": case("campaign run <cancelled> --as-user <owner>", fragment="cancelled"),
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
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(
    name: str, on_seeded: Seeded, files: dict[str, Path], env, refusals: list[str]
):
    refuse_in_process(name, CASES[name], on_seeded, files, env)
    refusals.append(f"{on_seeded.backend}:{name}")
