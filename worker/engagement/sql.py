"""The per-user statements as SQL text, built once per database and shape.

Profiling a worker showed peewee spending about 60% of its CPU turning queries into SQL, far
more than the database spent running them; the daily run issues a few statements per user,
tens of thousands of times. These few are written out here from the models' own table and
column names, and their values go through the fields' own converters, exactly as peewee would
send them. Everything else stays ordinary peewee.

A transition and the rows that go with it (its audit, the run's outcome) are one statement on
PostgreSQL (data-modifying CTEs): one round trip where a transaction of three statements took
five. SQLite has no data-modifying CTEs, so there they are written one by one, in the caller's
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from peewee import Field

from storage.db import database, is_postgres
from storage.models.engagement import EngagementState


def _quote(name: str) -> str:
    return f'"{name}"'


# The value expressions of an Insert for a placeholder: one placeholder per field by default.
ValuesSql = Callable[[str], Sequence[str]]


class Insert:
    """An INSERT of one row into one model's table, naming its fields once.

    `ignore_conflicts`: a row whose unique key is taken already is left as it is (0 inserted).
    `returning`: columns of the inserted row to read back (its id), None when nothing was.
    `values_sql`: the value expressions, when they are more than a placeholder per field (the
    outbox claim's status checks the suppression list); its rows then come with their
    parameters (:meth:`row_with_params`).
    Made once per kind of row, so the SQL is built once and nothing is looked up per row.
    """

    def __init__(
        self,
        *fields: Field,
        ignore_conflicts: bool = False,
        returning: Sequence[Field] = (),
        values_sql: ValuesSql | None = None,
    ) -> None:
        self.fields = fields
        self.table = _quote(fields[0].model._meta.table_name)
        self.columns = ", ".join(_quote(f.column_name) for f in fields)
        # Both SQLite (3.24+) and PostgreSQL read this clause the same way.
        self.on_conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
        self.read_back = tuple(_quote(f.column_name) for f in returning)
        self.returning = f" RETURNING {', '.join(self.read_back)}" if returning else ""
        self._values_sql = values_sql

    def row(self, *values: Any) -> Row:
        """One row: a value for each field, in the fields' order."""
        assert self._values_sql is None, "this insert's rows come with their parameters"
        return Row(self, values)

    def row_with_params(self, values: Sequence[Any], params: Sequence[Any]) -> Row:
        """One row of an insert with `values_sql`: its values (a value for each field) and the
        parameters of its value expressions, in their order."""
        return Row(self, tuple(values), tuple(params))

    def placeholders(self, param: str) -> str:
        if self._values_sql is not None:
            return ", ".join(self._values_sql(param))
        return ", ".join([param] * len(self.fields))


@dataclass(frozen=True)
class Row:
    """One row for `insert`: a value for each of its fields, in their order (and the
    parameters of its insert's value expressions, when they are not just those values)."""

    insert: Insert
    values: tuple[Any, ...]
    converted: tuple[Any, ...] | None = None

    def params(self) -> list[Any]:
        """The values as the fields' own converters send them."""
        if self.converted is not None:
            return list(self.converted)
        return [f.db_value(v) for f, v in zip(self.insert.fields, self.values, strict=True)]


@lru_cache(maxsize=64)
def _insert_sql(insert: Insert, param: str) -> str:
    return (
        f"INSERT INTO {insert.table} ({insert.columns}) "
        f"VALUES ({insert.placeholders(param)}){insert.on_conflict}{insert.returning}"
    )


def insert_row(row: Row) -> int:
    """INSERT one row; returns the number of rows inserted (0 for an ignored one)."""
    cursor = database.execute_sql(_insert_sql(row.insert, database.obj.param), row.params())
    return int(cursor.rowcount)


def _insert_reading_back(row: Row) -> tuple[Any, ...] | None:
    """INSERT one row whose Insert reads columns back; returns them (None: nothing inserted)."""
    cursor = database.execute_sql(_insert_sql(row.insert, database.obj.param), row.params())
    found = cursor.fetchone()
    return None if found is None else tuple(found)


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


@lru_cache(maxsize=64)
def _transition_with_rows_sql(update: str, inserts: tuple[Insert, ...], param: str) -> str:
    """PostgreSQL: the update, and each row inserted once for each state it changed (so not at
    all when it found the state changed), in one statement that answers how many it changed.

    Every part of a statement with data-modifying CTEs runs, whether or not its result is read,
    and all of it commits or none.
    """
    parts = [f"moved AS ({update} RETURNING 1)"]
    answers = ["(SELECT count(*) FROM moved)"]
    for number, insert in enumerate(inserts, start=1):
        parts.append(
            f"written_{number} AS (INSERT INTO {insert.table} ({insert.columns}) "
            f"SELECT {insert.placeholders(param)} FROM moved{insert.on_conflict}"
            f"{insert.returning})"
        )
        # A scalar subquery per column read back: NULL when nothing was inserted.
        answers += [f"(SELECT {column} FROM written_{number})" for column in insert.read_back]
    return f"WITH {', '.join(parts)} SELECT {', '.join(answers)}"


@dataclass(frozen=True)
class Applied:
    """What :func:`update_state` did: states changed (1 or 0), and the columns read back from
    each row whose Insert asks for some, in their order (a tuple each; None for a row not
    inserted)."""

    changed: int
    read_back: tuple[Any, ...] = ()


def _by_row(rows: Sequence[Row], answers: Sequence[Any]) -> tuple[Any, ...]:
    """The columns read back, one tuple per row that reads some (None: it was not inserted)."""
    grouped: list[tuple[Any, ...] | None] = []
    at = 0
    for row in rows:
        width = len(row.insert.read_back)
        if not width:
            continue
        values = tuple(answers[at : at + width])
        at += width
        grouped.append(None if all(v is None for v in values) else values)
    return tuple(grouped)


def update_state(
    user_id: int,
    changes: Mapping[str, Any],
    *,
    version: int | None = None,
    from_state: str | None = None,
    due: tuple[Field, datetime] | None = None,
    rows: Sequence[Row] = (),
) -> Applied:
    """The conditional update of one user's engagement state (the version is bumped), and
    `rows` inserted only if it changed the state.

    The condition is the version read, or the state found (with its due time still passed).
    Returns the number of states changed (1 for the winner, 0 when the row is not as read)
    and what the rows read back. On PostgreSQL this is one statement, atomic on its own; on
    SQLite it is one statement for the update and one per row, which only a transaction around
    the call makes atomic.
    """
    fields = [getattr(EngagementState, name) for name in changes]
    guard: list[tuple[Field, str, Any]] = []
    if version is not None:
        guard.append((EngagementState.version, "=", version))
    if from_state is not None:
        guard.append((EngagementState.state, "=", from_state))
    if due is not None:
        guard.append((due[0], "<=", due[1]))
    param = database.obj.param
    sql = _transition_sql(
        tuple(f.column_name for f in fields),
        tuple(f"{f.column_name} {op}" for f, op, _ in guard),
        param,
    )
    params: list[Any] = [
        *(f.db_value(changes[f.name]) for f in fields),
        EngagementState.user.db_value(user_id),
        *(f.db_value(value) for f, _, value in guard),
    ]
    if rows and is_postgres():
        for row in rows:
            params.extend(row.params())
        inserts = tuple(row.insert for row in rows)
        cursor = database.execute_sql(_transition_with_rows_sql(sql, inserts, param), params)
        changed, *answers = cursor.fetchone()
        return Applied(int(changed), _by_row(rows, answers))
    updated = int(database.execute_sql(sql, params).rowcount)
    read_back = []
    if updated:
        for row in rows:
            if row.insert.returning:
                read_back.append(_insert_reading_back(row))
            else:
                insert_row(row)
    return Applied(updated, tuple(read_back))


class SelectOne:
    """A SELECT of one row by a key, with (left field, right field, outer) joins.

    Made once per query, so its SQL is built once per database.
    """

    def __init__(
        self,
        fields: Sequence[Field],
        key: Field,
        joins: Sequence[tuple[Field, Field, bool]] = (),
    ) -> None:
        self.fields = tuple(fields)
        self.key = key
        self.joins = tuple(joins)
        self._sql: dict[str, str] = {}

    def _build(self, param: str) -> str:
        models = {f.model for f in self.fields}
        aliases = {m: f"t{i}" for i, m in enumerate(sorted(models, key=lambda m: m.__name__))}
        aliases.setdefault(self.key.model, f"t{len(aliases)}")

        def column(field: Field) -> str:
            return f"{aliases[field.model]}.{_quote(field.column_name)}"

        def table(model: Any) -> str:
            return f"{_quote(model._meta.table_name)} AS {aliases[model]}"

        sql = f"SELECT {', '.join(column(f) for f in self.fields)} FROM {table(self.key.model)}"
        for left, right, outer in self.joins:
            sql += f" {'LEFT OUTER JOIN' if outer else 'JOIN'} {table(right.model)}"
            sql += f" ON ({column(left)} = {column(right)})"
        return f"{sql} WHERE ({column(self.key)} = {param})"

    def fetch(self, value: Any) -> tuple[Any, ...] | None:
        """The row whose key is `value`, its values in the fields' order, converted; or None."""
        param = database.obj.param
        sql = self._sql.get(param)
        if sql is None:
            sql = self._sql[param] = self._build(param)
        row = database.execute_sql(sql, [self.key.db_value(value)]).fetchone()
        if row is None:
            return None
        return tuple(
            None if v is None else f.python_value(v) for f, v in zip(self.fields, row, strict=True)
        )
