"""Bad settings in the environment (cron expressions, time zones, timeouts): `outreach status`
refuses them in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.bad_input.cases import Case, case, refuse_in_process
from tests.faults.bad_input.seeding import Seeded

pytestmark = [pytest.mark.postgres]

CASES: dict[str, Case] = {
    # Bad dates, time zones and cron expressions.
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
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(
    name: str, on_seeded: Seeded, files: dict[str, Path], env, refusals: list[str]
):
    refuse_in_process(name, CASES[name], on_seeded, files, env)
    refusals.append(f"{on_seeded.backend}:{name}")
