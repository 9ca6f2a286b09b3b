"""What every command needs before it works: settings, database, broker and actors."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from storage.errors import InvalidInput

console = Console()

# The largest integer both databases store (SQLite INTEGER, PostgreSQL bigint): a bigger number
# names no row, and SQLite's driver raises on it instead of finding nothing.
MAX_INTEGER = 2**63 - 1
# Exit status of an import that skipped bad rows (the good ones are in).
EXIT_ROWS_REJECTED = 1


class IdType(click.types.IntParamType):
    """A row id on the command line: a whole number from 1 that a database can hold."""

    name = "integer"  # click says "'x' is not a valid integer."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number: int = super().convert(value, param, ctx)
        if number < 1:
            self.fail(f"{number} is not an id (ids start at 1)", param, ctx)
        if number > MAX_INTEGER:
            self.fail(f"{number} is too large for an id", param, ctx)
        return number


ID = IdType()
# A count or limit: 0 and negatives are left to the command, which names the rule.
COUNT = click.IntRange(max=MAX_INTEGER)


def check_text(value: Any, where: str) -> None:
    """Refuse text no database can store: NUL bytes, and lone surrogates (undecodable bytes).

    Walks lists and objects (parsed JSON), so one check covers a whole file.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(f"{where} contains a NUL byte")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{where} is not valid UTF-8 text") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where)
            check_text(item, where)
    elif isinstance(value, list):
        for item in value:
            check_text(item, where)


def past_fire_time(value: str | None, why_never_ahead: str) -> datetime:
    """A sweep's `--at`: now when unset, else an ISO 8601 time (UTC without an offset) that is
    not ahead of the clock, since a fire ahead of time would claim a later day's work today."""
    from storage import clock

    now = clock.now()
    if value is None:
        return now
    try:
        when = clock.as_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):  # overflow: year 1 with an offset east of UTC
        raise InvalidInput(f"--at {value!r} is not an ISO date-time (ISO 8601)") from None
    if when > now:
        raise InvalidInput(f"--at is in the future: {why_never_ahead}")
    return when


def boot() -> None:
    """Set up logging, the database and the broker, and declare every actor."""
    import worker.actors  # noqa: F401  (declares the actors on the configured broker)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, sort_keys=True))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if value is None else str(value) for value in row))
    console.print(table)
