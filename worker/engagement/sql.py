"""The per-user statements as SQL text, built once per database and shape.

Profiling a worker showed peewee spending about 60% of its CPU turning queries into SQL, far
more than the database spent running them; the daily run issues a few statements per user,
tens of thousands of times. These few are written out here from the models' own table and
column names, and their values go through the fields' own converters, exactly as peewee would
send them. Everything else stays ordinary peewee.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from peewee import Field

from storage.db import database
from storage.models.engagement import EngagementState


def _quote(name: str) -> str:
    return f'"{name}"'


@lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], ignore_conflicts: bool, param: str) -> str:
    sql = (
        f"INSERT INTO {_quote(table)} ({', '.join(map(_quote, columns))}) "
        f"VALUES ({', '.join([param] * len(columns))})"
    )
    # Both SQLite (3.24+) and PostgreSQL read this clause the same way.
    return sql + " ON CONFLICT DO NOTHING" if ignore_conflicts else sql


def insert(values: Mapping[Field, Any], *, ignore_conflicts: bool = False) -> int:
    """INSERT one row of one model; returns the number of rows inserted (0 for an ignored one)."""
    fields = tuple(values)
    table = fields[0].model._meta.table_name
    sql = _insert_sql(
        table, tuple(f.column_name for f in fields), ignore_conflicts, database.obj.param
    )
    cursor = database.execute_sql(sql, [f.db_value(v) for f, v in values.items()])
    return int(cursor.rowcount)


@lru_cache(maxsize=64)
def _transition_sql(columns: tuple[str, ...], guard: tuple[str, ...], param: str) -> str:
    state = EngagementState._meta
    sets = [f"{_quote(c)} = {param}" for c in columns]
    version = _quote(EngagementState.version.column_name)
    sets.append(f"{version} = {version} + 1")
    conditions = [f"{_quote(EngagementState.user.column_name)} = {param}"]
    for condition in guard:
        column, _, op = condition.partition(" ")
        conditions.append(f"{_quote(column)} {op} {param}")
    return (
        f"UPDATE {_quote(state.table_name)} SET {', '.join(sets)} WHERE {' AND '.join(conditions)}"
    )


def update_state(
    user_id: int,
    changes: Mapping[str, Any],
    *,
    version: int | None = None,
    from_state: str | None = None,
    due: tuple[Field, datetime] | None = None,
) -> int:
    """The conditional update of one user's engagement state (the version is bumped).

    The condition is the version read, or the state found (with its due time still passed).
    Returns the number of rows changed: 1 for the winner, 0 when the row is not as read.
    """
    fields = [getattr(EngagementState, name) for name in changes]
    guard: list[tuple[Field, str, Any]] = []
    if version is not None:
        guard.append((EngagementState.version, "=", version))
    if from_state is not None:
        guard.append((EngagementState.state, "=", from_state))
    if due is not None:
        guard.append((due[0], "<=", due[1]))
    sql = _transition_sql(
        tuple(f.column_name for f in fields),
        tuple(f"{f.column_name} {op}" for f, op, _ in guard),
        database.obj.param,
    )
    params: Sequence[Any] = [
        *(f.db_value(changes[f.name]) for f in fields),
        EngagementState.user.db_value(user_id),
        *(f.db_value(value) for f, _, value in guard),
    ]
    cursor = database.execute_sql(sql, params)
    return int(cursor.rowcount)


@lru_cache(maxsize=8)
def _select_sql(
    fields: tuple[Field, ...], joins: tuple[tuple[Field, Field, bool], ...], key: Field, param: str
) -> str:
    tables = {f.model for f in fields}
    aliases = {model: f"t{i}" for i, model in enumerate(sorted(tables, key=lambda m: m.__name__))}
    aliases.setdefault(key.model, f"t{len(aliases)}")

    def column(field: Field) -> str:
        return f"{aliases[field.model]}.{_quote(field.column_name)}"

    def table(model: Any) -> str:
        return f"{_quote(model._meta.table_name)} AS {aliases[model]}"

    sql = f"SELECT {', '.join(column(f) for f in fields)} FROM {table(key.model)}"
    for left, right, outer in joins:
        sql += f" {'LEFT OUTER JOIN' if outer else 'JOIN'} {table(right.model)}"
        sql += f" ON ({column(left)} = {column(right)})"
    return f"{sql} WHERE ({column(key)} = {param})"


def select_one(
    fields: Sequence[Field],
    key: Field,
    value: Any,
    joins: Sequence[tuple[Field, Field, bool]] = (),
) -> dict[Field, Any] | None:
    """One row by `key`, with (left field, right field, outer) joins; values by field, converted."""
    sql = _select_sql(tuple(fields), tuple(joins), key, database.obj.param)
    row = database.execute_sql(sql, [key.db_value(value)]).fetchone()
    if row is None:
        return None
    return {
        f: (f.python_value(v) if v is not None else None) for f, v in zip(fields, row, strict=True)
    }
