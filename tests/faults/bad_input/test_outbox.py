"""Bad input to the outbox and dead-letter commands: `outbox send`, `review`, `resolve`, and
`dlq requeue`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.bad_input.cases import (
    LONG_LINE_BYTES,
    TOO_BIG,
    Case,
    case,
    refuse_in_process,
    too_big_ids,
)
from tests.faults.bad_input.seeding import Seeded

pytestmark = [pytest.mark.postgres]

SEND = "outbox send --channel log --to x"

CASES: dict[str, Case] = {
    # Text no database stores: NUL bytes, and undecodable bytes (lone surrogates).
    "outbox-send-nul": case(f"{SEND} --key k --body", "b\x00", fragment="NUL"),
    "resolve-reason-nul": case(
        "outbox resolve <unknown_row> --mark-sent --reason", "x\x00", fragment="NUL"
    ),
    # Too long.
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
    "review-limit-zero": case("outbox review --limit 0", fragment="at least 1"),
    "review-limit-negative": case("outbox review --limit -5", fragment="at least 1"),
    "review-limit-huge": case(f"outbox review --limit {TOO_BIG}", fragment="--limit"),
    # Ids no column holds.
    **too_big_ids((f"outbox resolve {TOO_BIG} --mark-sent --reason x", "too large for an id")),
    # Unknown ids, wrong owners and wrong states.
    "unknown-outbox-row": case(
        "outbox resolve 999999 --resend --reason x", fragment="does not exist"
    ),
    "resolve-a-sent-row": case(
        "outbox resolve <sent_row> --resend --reason x", fragment="not unknown"
    ),
    "resolve-without-reason": case("outbox resolve <unknown_row> --mark-sent", fragment="reason"),
    "resolve-both-ways": case(
        "outbox resolve <unknown_row> --mark-sent --resend --reason x",
        fragment="--mark-sent or --resend",
    ),
    "dlq-without-redis": case("dlq requeue --all", fragment="REDIS_URL"),
    "dlq-id-and-all": case("dlq requeue x --all", fragment="MESSAGE_ID or --all"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(
    name: str, on_seeded: Seeded, files: dict[str, Path], env, refusals: list[str]
):
    refuse_in_process(name, CASES[name], on_seeded, files, env)
    refusals.append(f"{on_seeded.backend}:{name}")
