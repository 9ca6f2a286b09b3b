"""Bad input to the engagement commands: `engagement run-daily`, `report`, `activity`, `answer`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.bad_input.cases import TOO_BIG, Case, case, refuse_in_process, too_big_ids
from tests.faults.bad_input.seeding import Seeded

pytestmark = [pytest.mark.postgres]

CASES: dict[str, Case] = {
    # Negative, zero and oversized limits.
    "run-daily-timeout-negative": case("engagement run-daily --timeout -1", fragment="x>=0"),
    "run-daily-timeout-nan": case("engagement run-daily --timeout nan", fragment="not a number"),
    # Ids no column holds; said per backend: "does not exist" (PostgreSQL), "a number is out of
    # range".
    **too_big_ids((f"engagement report {TOO_BIG}", ""), (f"engagement activity {TOO_BIG}", "")),
    # Unknown ids, wrong owners and wrong states.
    "unknown-run": case("engagement report 999999", fragment="does not exist"),
    "unknown-user": case("engagement activity 999999", fragment="does not exist"),
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
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(
    name: str, on_seeded: Seeded, files: dict[str, Path], env, refusals: list[str]
):
    refuse_in_process(name, CASES[name], on_seeded, files, env)
    refusals.append(f"{on_seeded.backend}:{name}")
