"""Many-row upserts as SQL text, built once per table and shape.

Profiling the members import showed peewee spending nine tenths of the time turning multi-row
inserts into SQL. These are written out from the model's own table and column names, and their
values go through the fields' own converters, exactly as peewee would send them. Both backends
read ``INSERT ... ON CONFLICT ... DO UPDATE``, ``excluded`` and ``RETURNING`` (SQLite 3.35+).

SQLite takes the rows as one ``VALUES`` list of placeholders. PostgreSQL takes one array per
column (``SELECT * FROM unnest(...)``): psycopg rewrites every placeholder of a statement in
Python, and does not cache statements this long, so 14,000 placeholders cost it half a second a
statement where a dozen arrays cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    DateTimeField,
    Field,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from storage.db import database, is_postgres

# PostgreSQL's array element type for each kind of field (an integer column takes a bigint by
# assignment); any other field is text.
_PG_TYPES: tuple[tuple[type[Field], str], ...] = (
    (AutoField, "bigint"),
    (ForeignKeyField, "bigint"),
    (IntegerField, "bigint"),
    (BooleanField, "boolean"),
    (DateTimeField, "timestamp"),
)
# Fields whose values the drivers take as they are (str, int, bool): skipping their converters
# saves a call per value. Callers pass those values already of the field's type.
_PASSED_AS_IS = (AutoField, BooleanField, CharField, ForeignKeyField, IntegerField, TextField)


def quote(name: str) -> str:
    return f'"{name}"'


def excluded(field: Field) -> str:
    """The value the conflicting row would have written, in an update's expression."""
    return f"excluded.{quote(field.column_name)}"


def current(field: Field) -> str:
    """The stored row's value, in an update's expression."""
    return f"{quote(field.model._meta.table_name)}.{quote(field.column_name)}"


def changes(fields: Sequence[Field]) -> str:
    """A condition true when the conflicting row would change one of `fields` (nulls compared
    as values): an update limited by it leaves a row that would stay the same unwritten."""
    differs = "IS DISTINCT FROM" if is_postgres() else "IS NOT"
    return " OR ".join(f"{current(f)} {differs} {excluded(f)}" for f in fields) or "FALSE"


@lru_cache(maxsize=64)
def _upsert_sql(
    table: str,
    columns: tuple[str, ...],
    conflict: tuple[str, ...],
    updates: tuple[tuple[str, str], ...],
    returning: tuple[str, ...],
    rows: int,
    param: str,
    pg_types: tuple[str, ...] = (),
    flag_inserted: bool = False,
    update_when: str = "",
) -> str:
    if pg_types:
        arrays = ", ".join(f"{param}::{kind}[]" for kind in pg_types)
        source = f"SELECT * FROM unnest({arrays})"
    else:
        row = "(" + ", ".join([param] * len(columns)) + ")"
        source = f"VALUES {', '.join([row] * rows)}"
    action = (
        "DO UPDATE SET " + ", ".join(f"{quote(c)} = {expr}" for c, expr in updates)
        if updates
        else "DO NOTHING"
    )
    if updates and update_when:
        action += f" WHERE {update_when}"
    sql = (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "
        f"{source} "
        f"ON CONFLICT ({', '.join(quote(c) for c in conflict)}) {action}"
    )
    if returning:
        sql += " RETURNING " + ", ".join(quote(c) for c in returning)
        if flag_inserted:
            # A row version this statement inserted has no deleting transaction (xmax 0); an
            # updated one carries the updating transaction's id.
            sql += ", (xmax = 0)"
    return sql


def upsert(
    model: type[Model],
    fields: Sequence[Field],
    rows: Sequence[Sequence[Any]],
    conflict: Sequence[Field],
    updates: Sequence[tuple[Field, str]] = (),
    returning: Sequence[Field] = (),
    flag_inserted: bool = False,
    update_when: str = "",
) -> list[tuple[Any, ...]]:
    """Insert `rows` (values in `fields` order); a row clashing on `conflict` gets `updates`
    (field, SQL expression) instead, or is left alone when there are none or `update_when` (an
    SQL condition) is false for it. One statement.

    With `flag_inserted` (PostgreSQL only), each returned row ends with whether the statement
    inserted it rather than updated it."""
    if not rows:
        return []
    postgres = is_postgres()
    if flag_inserted and not (postgres and returning):
        raise ValueError("flag_inserted needs PostgreSQL and returned columns")
    pg_types = tuple(_pg_type(f) for f in fields) if postgres else ()
    sql = _upsert_sql(
        model._meta.table_name,
        tuple(f.column_name for f in fields),
        tuple(f.column_name for f in conflict),
        tuple((f.column_name, expr) for f, expr in updates),
        tuple(f.column_name for f in returning),
        0 if postgres else len(rows),
        str(database.obj.param),
        pg_types,
        flag_inserted,
        update_when,
    )
    converted = [i for i, f in enumerate(fields) if not isinstance(f, _PASSED_AS_IS)]
    # A chunk's rows share most timestamps (its `now`): each distinct value is converted once.
    memo: list[dict[Any, Any]] = [{} for _ in fields]
    table: list[list[Any]] = []
    for row in rows:
        values = list(row)
        for i in converted:
            value = values[i]
            seen = memo[i]
            if value not in seen:
                seen[value] = fields[i].db_value(value)
            values[i] = seen[value]
        table.append(values)
    if postgres:
        params: list[Any] = [list(column) for column in zip(*table, strict=True)]
    else:
        params = [value for values in table for value in values]
    cursor = database.execute_sql(sql, params)
    return [tuple(r) for r in cursor.fetchall()] if returning else []


def _pg_type(field: Field) -> str:
    for kind, name in _PG_TYPES:
        if isinstance(field, kind):
            return name
    return "text"


@lru_cache(maxsize=64)
def _matching_sql(table: str, key: str, column: str, values: int, param: str, out: str) -> str:
    # values == 0: one array parameter (PostgreSQL), else that many placeholders.
    within = f"= ANY({param})" if values == 0 else f"IN ({', '.join([param] * values)})"
    return (
        f"SELECT {quote(column)}, {quote(out)} FROM {quote(table)} "
        f"WHERE {quote(key)} = {param} AND {quote(column)} {within}"
    )


def matching(
    key: Field, key_value: Any, column: Field, values: Sequence[Any], out: Field
) -> dict[Any, Any]:
    """{column value: out value} of the rows with `key` = `key_value` and `column` in `values`."""
    if not values:
        return {}
    postgres = is_postgres()
    sql = _matching_sql(
        key.model._meta.table_name,
        key.column_name,
        column.column_name,
        0 if postgres else len(values),
        str(database.obj.param),
        out.column_name,
    )
    converted = [column.db_value(value) for value in values]
    cursor = database.execute_sql(
        sql, [key.db_value(key_value), *([converted] if postgres else converted)]
    )
    return dict(cursor.fetchall())
