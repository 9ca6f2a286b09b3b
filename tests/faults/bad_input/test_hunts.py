"""Bad input to the hunt commands: `hunt create` from hostile files, `run`, `status`, `pause`,
`resume`, `sweep`, and `enqueue hunt`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.bad_input.cases import TOO_BIG, Case, case, refuse_in_process, too_big_ids
from tests.faults.bad_input.hostile_files import hunt_files
from tests.faults.bad_input.seeding import Seeded

pytestmark = [pytest.mark.postgres]

HOSTILE_FILES = (hunt_files,)

CASES: dict[str, Case] = {
    # Templates that try Python's format machinery, through the options and through files.
    **{
        f"hunt-template-trick-{n}": case(
            f"hunt create @hunt-trick-{n}.json", fragment="message template"
        )
        for n in range(6)
    },
    # Wrongly typed options.
    "missing-file": case("hunt create /no/such/hunt.json", fragment="cannot read"),
    # Ids no column holds.
    **too_big_ids(
        (f"hunt run {TOO_BIG}", "too large for an id"),
        (f"hunt status {TOO_BIG}", "too large for an id"),
        (f"hunt resume {TOO_BIG}", "too large for an id"),
        (f"enqueue hunt {TOO_BIG}", "too large for an id"),
    ),
    # Unknown ids, wrong owners and wrong states.
    "unknown-hunt": case("hunt run 999999", fragment="hunt 999999 does not exist"),
    "unknown-hunt-pause": case("hunt pause 999999", fragment="does not exist"),
    "unknown-hunt-enqueue": case("enqueue hunt 999999", fragment="does not exist"),
    "resume-an-archived-hunt": case("hunt resume <archived>", fragment="archived"),
    # Bad dates, time zones and cron expressions.
    "sweep-in-the-future": case("hunt sweep --at 2999-01-01", fragment="future"),
    "sweep-garbage": case("hunt sweep --at garbage", fragment="ISO date-time"),
    "sweep-year-one": case("hunt sweep --at 0001-01-01T00:00+01:00", fragment="ISO"),
    "sweep-bad-offset": case("hunt sweep --at 2026-03-02T10:00+99:00", fragment="ISO"),
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


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(
    name: str, on_seeded: Seeded, files: dict[str, Path], env, refusals: list[str]
):
    refuse_in_process(name, CASES[name], on_seeded, files, env)
    refusals.append(f"{on_seeded.backend}:{name}")
