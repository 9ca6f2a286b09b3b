"""The statements of a sender's pacing state, written out.

Every paced send reads or moves its sender's row; built by peewee, those statements cost a
worker more CPU than the send itself. Each is one statement, conditional where two workers
could race (worker.senders says on what).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from storage.db import database
from storage.models.accounts import Account
from storage.models.base import RowReader
from storage.models.outbox import QUEUED, OutboxMessage
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


def _last_send_set(param: str, where: str, senders: int = 1, value: str | None = None) -> str:
    """The statement that records a send of the sender named (of each of the `senders` named),
    at `value` (by default one parameter), bumping its version, where `where` holds."""
    last, version, name = _column("last_send_at"), _column("version"), _column("name")
    named = f"= {param}" if senders == 1 else f"IN ({', '.join([param] * senders)})"
    return (
        f"UPDATE {_TABLE} SET {last} = {value or param}, {version} = {version} + 1 "
        f"WHERE {name} {named} AND {where}"
    )


@lru_cache(maxsize=4)
def _go_sql(param: str) -> str:
    last, paused = _column("last_send_at"), _column("paused_until")
    return _last_send_set(
        param,
        f"({paused} IS NULL OR {paused} <= {param}) AND ({last} IS NULL OR {last} <= {param})",
    )


def go_if_quiet(name: str, now: datetime, quiet_before: datetime) -> bool:
    """Let a send go now if the sender is not paused and its last send was at or before
    `quiet_before`: one statement, atomic however many workers ask at once."""
    params = [_STAMP(now), name, _STAMP(now), _STAMP(quiet_before)]
    return bool(database.execute_sql(_go_sql(str(database.obj.param)), params).rowcount)


@lru_cache(maxsize=64)
def _go_many_sql(param: str, senders: int) -> str:
    last, paused, name = _column("last_send_at"), _column("paused_until"), _column("name")
    # Per sender: the start its send is recorded at, then the time its last send must be before.
    each = f"CASE {name} {' '.join([f'WHEN {param} THEN {param}'] * senders)} END"
    where = f"({paused} IS NULL OR {paused} <= {param}) AND ({last} IS NULL OR {last} <= {each})"
    return f"{_last_send_set(param, where, senders, value=each)} RETURNING {name}"


def go_if_quiet_many(
    quiet_before: Mapping[str, datetime],
    now: datetime,
    starts: Mapping[str, datetime] | None = None,
) -> set[str]:
    """go_if_quiet for several senders at once (each sender's name, and the time its last send
    must be at or before), each let go recorded as sending at its time in `starts` (now, or a
    moment after): the names of those let go, in one statement."""
    if not quiet_before:
        return set()
    names = sorted(quiet_before)
    starts = starts or {}
    params: list[Any] = []
    for name in names:
        params += [name, _STAMP(starts.get(name, now))]
    params += [*names, _STAMP(now)]
    for name in names:
        params += [name, _STAMP(quiet_before[name])]
    sql = _go_many_sql(str(database.obj.param), len(names))
    return {str(found[0]) for found in database.execute_sql(sql, params).fetchall()}


@lru_cache(maxsize=4)
def _move_turn_sql(param: str) -> str:
    return _last_send_set(param, f"{_column('last_send_at')} = {param}")


def move_turn(name: str, taken: datetime, now: datetime) -> bool:
    """Move the sender's turn let go at `taken` to `now`, if no other send was let go since."""
    params = [_STAMP(now), name, _STAMP(taken)]
    return bool(database.execute_sql(_move_turn_sql(str(database.obj.param)), params).rowcount)


@lru_cache(maxsize=4)
def _ended_sql(param: str) -> str:
    last = _column("last_send_at")
    return _last_send_set(param, f"({last} IS NULL OR {last} < {param})")


def mark_send_ended(name: str, at: datetime) -> None:
    """The sender's last send ended at `at` (unless a later one is already recorded)."""
    params = [_STAMP(at), name, _STAMP(at)]
    database.execute_sql(_ended_sql(str(database.obj.param)), params)


_OUTBOX = OutboxMessage._meta


def _outbox_column(name: str) -> str:
    return f'o."{_OUTBOX.fields[name].column_name}"'


# What the check before a claim reads: the row, its sender's row (settings, last send, pause),
# and its account's zone and sending hours (read here, they need no statement of their own).
_QUEUED_ROW_FIELDS = (
    "id",
    "account_id",
    "attempts",
    "not_before",
    "channel",
    "sender",
    "source",
    "sending_hours",
)
_ACCOUNT_FIELDS = (Account.id, Account.timezone, Account.sending_hours)
_QUEUED_CONVERTERS = tuple(_OUTBOX.fields[name].python_value for name in _QUEUED_ROW_FIELDS)


@lru_cache(maxsize=64)
def _queued_rows_sql(param: str, rows: int) -> str:
    columns = [_outbox_column(name) for name in _QUEUED_ROW_FIELDS]
    columns += [f's."{f.column_name}"' for f in _FIELDS]
    columns += [f'a."{f.column_name}"' for f in _ACCOUNT_FIELDS]
    return (
        f"SELECT {', '.join(columns)} "
        f'FROM "{_OUTBOX.table_name}" AS o '
        f"LEFT JOIN {_TABLE} AS s ON s.{_column('name')} = {_outbox_column('sender')} "
        f'LEFT JOIN "{Account._meta.table_name}" AS a '
        f'ON a."{Account.id.column_name}" = {_outbox_column("account_id")} '
        f"WHERE {_outbox_column('id')} IN ({', '.join([param] * rows)}) "
        # As worker.outbox_sql's statements by id: no index serves the status test, so the
        # rows are found by their primary key.
        f"AND {_outbox_column('status')} || '' = {param}"
    )


@dataclass(frozen=True)
class QueuedRow:
    """A queued row as its pacing sees it, with its sender's row (None: the row names no
    sender, or its sender has no row yet) and its account's zone and hours (None: none)."""

    outbox_id: int
    account_id: int | None
    attempts: int
    not_before: datetime | None
    channel: str
    sender: str | None
    source: str
    sending_hours: str | None
    sender_row: Sender | None
    account: tuple[str, str | None] | None

    @property
    def last_send_at(self) -> datetime | None:
        return None if self.sender_row is None else self.sender_row.last_send_at

    @property
    def paused_until(self) -> datetime | None:
        return None if self.sender_row is None else self.sender_row.paused_until


def queued_rows(outbox_ids: Sequence[int]) -> list[QueuedRow]:
    """The `queued` rows among `outbox_ids`, with their sender's row and their account's zone
    and hours, in the order of `outbox_ids`: one read."""
    if not outbox_ids:
        return []
    sql = _queued_rows_sql(str(database.obj.param), len(outbox_ids))
    own, sender = len(_QUEUED_ROW_FIELDS), len(_QUEUED_ROW_FIELDS) + len(_FIELDS)
    rows: dict[int, QueuedRow] = {}
    for values in database.execute_sql(sql, [*outbox_ids, QUEUED]).fetchall():
        converted: list[Any] = [
            None if value is None else convert(value)
            for convert, value in zip(_QUEUED_CONVERTERS, values[:own], strict=True)
        ]
        sender_values, account_values = values[own:sender], values[sender:]
        sender_row = None if sender_values[0] is None else _read_row(sender_values)
        account = None if account_values[0] is None else (str(account_values[1]), account_values[2])
        outbox_id, account_id, attempts, not_before, channel, name, source, hours = converted
        row = QueuedRow(
            outbox_id,
            account_id,
            attempts,
            not_before,
            channel,
            name,
            source,
            hours,
            sender_row,
            account,
        )
        rows[row.outbox_id] = row
    return [rows[i] for i in outbox_ids if i in rows]
