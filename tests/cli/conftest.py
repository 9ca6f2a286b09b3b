"""CLI fixtures: run `outreach` in-process, and check the one-line error promise."""

from __future__ import annotations

from click.testing import CliRunner, Result

from producers.cli import main


def outreach(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_refused(result: Result, *fragments: str, exit_code: int = 2) -> None:
    """Bad input: exactly one line on stderr, starting with `error:`, and a non-zero exit."""
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output
