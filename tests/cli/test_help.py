"""One coherent `outreach --help`, and a malformed command line is one line anywhere."""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_refused, outreach


def test_help_lists_every_operator_command():
    result = outreach("--help")
    assert result.exit_code == 0
    for command in (
        "demo",
        "scheduler",
        "status",
        "dlq",
        "outbox",
        "enqueue",
        "migrate",
        "settings",
        "engagement",
        "campaign",
        "hunt",
    ):
        assert f"  {command} " in result.stdout
    outbox = outreach("outbox", "--help")
    assert all(f"  {c} " in outbox.stdout for c in ("send", "review", "resolve"))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["outbox", "resolve"], "Missing argument 'OUTBOX_ID'"),
        (["status", "--verbose"], "No such option"),
        (["dlq", "purge"], "No such command 'purge'"),
        (["outbox", "review", "--limit", "many"], "'many' is not a valid integer"),
    ],
)
def test_a_malformed_command_line_is_one_line_with_a_pointer_to_help(args, fragment):
    result = outreach(*args)
    assert_refused(result, fragment, "--help")
