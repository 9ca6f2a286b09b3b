"""The outbox's per-message statements as SQL text, built once per database.

Every message goes through these: its claim in the outbox, its claim for sending, and its
outcome. Profiling a worker showed peewee spending more CPU turning these queries into SQL than
the database spent running them, so they are written out here from the model's own table and
column names, and their values go through the fields' own converters, exactly as peewee would
send them. Each is one statement: atomic on its own, so none needs a transaction of its own.
Both backends read the same text (SQLite 3.35+ has RETURNING); only the placeholder differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from peewee import Field

from storage.db import database
from storage.models.outbox import QUEUED, SENDING, OutboxMessage

_META = OutboxMessage._meta
_FIELDS = tuple(_META.sorted_fields)
# What queue_message writes, in this order.
_INSERTED: tuple[Field, ...] = (
    OutboxMessage.idempotency_key,
    OutboxMessage.channel,
    OutboxMessage.recipient,
    OutboxMessage.body,
    OutboxMessage.media_url,
    OutboxMessage.media_mime,
    OutboxMessage.source,
    OutboxMessage.status,
    OutboxMessage.attempts,
    OutboxMessage.created_at,
    OutboxMessage.enqueued_at,
)


def _quote(name: str) -> str:
    return f'"{name}"'


_TABLE = _quote(_META.table_name)
_COLUMNS = ", ".join(_quote(f.column_name) for f in _FIELDS)


def _column(field: Any) -> str:
    return _quote(field.column_name)


def _param() -> str:
    return str(database.obj.param)


def _row(values: Sequence[Any]) -> OutboxMessage:
    """A model instance from a row of all columns, as peewee's own cursor wrapper makes it."""
    data = {f.name: f.python_value(v) for f, v in zip(_FIELDS, values, strict=True)}
    message = OutboxMessage(__no_default__=1, **data)
    message._dirty.clear()  # type: ignore[attr-defined]
    return message


@lru_cache(maxsize=4)
def _insert_sql(param: str) -> str:
    return (
        f"INSERT INTO {_TABLE} ({', '.join(_column(f) for f in _INSERTED)}) "
        f"VALUES ({', '.join([param] * len(_INSERTED))}) "
        f"ON CONFLICT ({_column(OutboxMessage.idempotency_key)}) DO NOTHING "
        f"RETURNING {_COLUMNS}"
    )


def insert_queued(
    idempotency_key: str,
    channel: str,
    recipient: str,
    body: str,
    media_url: str | None,
    media_mime: str | None,
    source: str,
    now: datetime,
) -> OutboxMessage | None:
    """Claim the key with a new `queued` row; None when the key was claimed before.

    RETURNING gives back only a row this statement inserted, on both backends (an ignored
    insert returns nothing, where SQLite's last row id would name the previous insert).
    """
    values = (
        idempotency_key,
        channel,
        recipient,
        body,
        media_url,
        media_mime,
        source,
        QUEUED,
        0,
        now,
        now,
    )
    params = [f.db_value(v) for f, v in zip(_INSERTED, values, strict=True)]
    found = database.execute_sql(_insert_sql(_param()), params).fetchone()
    return None if found is None else _row(found)


@lru_cache(maxsize=4)
def _select_by_key_sql(param: str) -> str:
    return (
        f"SELECT {_COLUMNS} FROM {_TABLE} WHERE {_column(OutboxMessage.idempotency_key)} = {param}"
    )


def get_by_key(idempotency_key: str) -> OutboxMessage | None:
    found = database.execute_sql(_select_by_key_sql(_param()), [idempotency_key]).fetchone()
    return None if found is None else _row(found)


@lru_cache(maxsize=16)
def _claim_sql(param: str, channels: int) -> str:
    placeholders = ", ".join([param] * channels)
    attempts = _column(OutboxMessage.attempts)
    return (
        f"UPDATE {_TABLE} SET {_column(OutboxMessage.status)} = {param}, "
        f"{_column(OutboxMessage.claimed_at)} = {param}, {attempts} = {attempts} + 1 "
        f"WHERE {_column(OutboxMessage.id)} = {param} "
        f"AND {_column(OutboxMessage.status)} = {param} "
        f"AND {_column(OutboxMessage.channel)} IN ({placeholders}) "
        f"RETURNING {_COLUMNS}"
    )


def claim_queued(outbox_id: int, now: datetime, channels: Sequence[str]) -> OutboxMessage | None:
    """Move a `queued` row on one of `channels` to `sending` and read it, in one statement.

    Only one worker's update matches the row (the others find it `sending`), so the row that
    comes back is this worker's claim; its `attempts` is the claim's token. None when the row
    is not queued, or is on a channel that is not in `channels`.
    """
    if not channels:
        return None
    params = [
        SENDING,
        OutboxMessage.claimed_at.db_value(now),
        outbox_id,
        QUEUED,
        *channels,
    ]
    found = database.execute_sql(_claim_sql(_param(), len(channels)), params).fetchone()
    return None if found is None else _row(found)


@lru_cache(maxsize=16)
def _finish_sql(param: str, columns: tuple[str, ...], returning: bool) -> str:
    sets = ", ".join(f"{_quote(c)} = {param}" for c in columns)
    sql = (
        f"UPDATE {_TABLE} SET {sets} "
        f"WHERE {_column(OutboxMessage.id)} = {param} "
        f"AND {_column(OutboxMessage.status)} = {param} "
        f"AND {_column(OutboxMessage.attempts)} = {param}"
    )
    return f"{sql} RETURNING {_COLUMNS}" if returning else sql


def finish_claimed(
    outbox_id: int,
    attempt: int,
    values: dict[str, Any],
    *,
    returning: bool,
) -> tuple[bool, OutboxMessage | None]:
    """Record the outcome of this worker's claim (`sending` with its attempt number).

    Conditional on the claim, so a late worker never overwrites another's result. Returns
    whether the row was changed, and the row as it now is when `returning`.
    """
    fields = [_META.fields[name] for name in values]
    sql = _finish_sql(_param(), tuple(f.column_name for f in fields), returning)
    params = [
        *(f.db_value(values[f.name]) for f in fields),
        outbox_id,
        SENDING,
        attempt,
    ]
    cursor = database.execute_sql(sql, params)
    if not returning:
        return cursor.rowcount > 0, None
    found = cursor.fetchone()
    return found is not None, None if found is None else _row(found)
