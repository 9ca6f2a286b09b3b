"""A bad-input case and its check: the command, the one stderr line it must give, its exit status,
and every table compared before and after; and the hostile values the cases share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from producers.cli import main
from storage.db import database, is_postgres
from storage.settings import get_settings
from tests.faults.bad_input.seeding import Seeded

# Sizes of the oversized inputs.
HUGE_FILE_BYTES = 50 * 1024 * 1024
LONG_LINE_BYTES = 10 * 1024 * 1024
# More digits than Python turns into an int from text (JSON numbers included).
HUGE_DIGITS = "9" * 5_000
# Larger than any integer column (and than SQLite's 64-bit INTEGER).
TOO_BIG = "99999999999999999999999"
FORMAT_TRICKS = ("{0.__class__}", "{user.__init__.__globals__}", "{x!r:>99999999}")
SQL_LOOKING = "'; DROP TABLE contact; --"


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


def too_big_ids(*commands: tuple[str, str]) -> dict[str, Case]:
    """Ids no column holds: each (command, fragment) named after the command's first two words."""
    return {
        f"too-big-id-{'-'.join(command.split()[:2])}": case(command, fragment=fragment)
        for command, fragment in commands
    }


def resolve(args: tuple[str, ...], seeded: Seeded, files: dict[str, Path]) -> list[str]:
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


def refuse_in_process(
    name: str, want: Case, seeded: Seeded, files: dict[str, Path], env: pytest.MonkeyPatch
) -> None:
    """`want` run through click's CliRunner on the seeded database: one line, nothing changed."""
    for variable, value in want.env:
        env.setenv(variable, value)
    # Given the database as it is
    before = table_dump()
    # When the command is given the bad input
    result: Result = CliRunner().invoke(main, resolve(want.args, seeded, files))
    # Then it is one clear line and a non-zero exit, and no table changed by a single row
    assert_one_line_refusal(
        result.exit_code, result.stdout, result.stderr, want, where=f"{name} ({seeded.backend})"
    )
    assert table_dump() == before
    get_settings.cache_clear()
