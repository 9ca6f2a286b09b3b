"""The statements of a sender's pacing state, written out.

Every paced send reads or moves its sender's row; built by peewee, those statements cost a
worker more CPU than the send itself. Each is one statement, conditional where two workers
could race (worker.senders says on what).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from storage.db import database
from storage.models.base import RowReader
from storage.models.senders import Sender

_META = Sender._meta
_FIELDS = tuple(_META.sorted_fields)
_read_row = RowReader(Sender, _FIELDS)
_TABLE = f'"{_META.table_name}"'
_STAMP = Sender.last_send_at.db_value


def _column(name: str) -> str:
    return f'"{_META.fields[name].column_name}"'


@lru_cache(maxsize=4)
def _read_sql(param: str) -> str:
    columns = ", ".join(f'"{f.column_name}"' for f in _FIELDS)
    return f"SELECT {columns} FROM {_TABLE} WHERE {_column('name')} = {param}"


def read(name: str) -> Sender | None:
    """The sender's row as it is now, or None."""
    found = database.execute_sql(_read_sql(str(database.obj.param)), [name]).fetchone()
    return None if found is None else _read_row(found)


@lru_cache(maxsize=32)
def _write_sql(param: str, names: tuple[str, ...]) -> str:
    sets = ", ".join(f"{_column(name)} = {param}" for name in names)
    version = _column("version")
    return (
        f"UPDATE {_TABLE} SET {sets}, {version} = {version} + 1 "
        f"WHERE {_column('id')} = {param} AND {version} = {param}"
    )


def write_if_unchanged(sender_id: int, version: int, values: dict[str, object]) -> bool:
    """Set `values` (field names) on the sender if its `version` is still `version`."""
    names = tuple(sorted(values))
    params: list[Any] = [_META.fields[n].db_value(values[n]) for n in names]
    params += [sender_id, version]
    cursor = database.execute_sql(_write_sql(str(database.obj.param), names), params)
    return bool(cursor.rowcount)


@lru_cache(maxsize=4)
def _go_sql(param: str) -> str:
    last, paused, version = _column("last_send_at"), _column("paused_until"), _column("version")
    return (
        f"UPDATE {_TABLE} SET {last} = {param}, {version} = {version} + 1 "
        f"WHERE {_column('name')} = {param} "
        f"AND ({paused} IS NULL OR {paused} <= {param}) "
        f"AND ({last} IS NULL OR {last} <= {param})"
    )


def go_if_quiet(name: str, now: datetime, quiet_before: datetime) -> bool:
    """Let a send go now if the sender is not paused and its last send was at or before
    `quiet_before`: one statement, atomic however many workers ask at once."""
    params = [_STAMP(now), name, _STAMP(now), _STAMP(quiet_before)]
    return bool(database.execute_sql(_go_sql(str(database.obj.param)), params).rowcount)


@lru_cache(maxsize=4)
def _ended_sql(param: str) -> str:
    last, version = _column("last_send_at"), _column("version")
    return (
        f"UPDATE {_TABLE} SET {last} = {param}, {version} = {version} + 1 "
        f"WHERE {_column('name')} = {param} AND ({last} IS NULL OR {last} < {param})"
    )


def mark_send_ended(name: str, at: datetime) -> None:
    """The sender's last send ended at `at` (unless a later one is already recorded)."""
    params = [_STAMP(at), name, _STAMP(at)]
    database.execute_sql(_ended_sql(str(database.obj.param)), params)
