"""The base model and the field types every model shares."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from peewee import DateTimeField, Field, Model

from storage.clock import as_utc
from storage.db import database


class UTCDateTimeField(DateTimeField):
    """Kept as naive UTC in the database, handed out as aware UTC.

    One convention on both backends: SQLite has no time zones, and PostgreSQL's
    ``timestamp`` would shift aware values by the session's time zone.
    """

    def db_value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            value = as_utc(value).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value: Any) -> Any:
        value = super().python_value(value)
        if isinstance(value, datetime):
            return as_utc(value)
        return value


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


M = TypeVar("M", bound=Model)


def from_row(model: type[M], fields: Sequence[Field], values: Sequence[Any]) -> M:
    """An instance of `model` from a row's values for `fields` (in that order), each through
    its field's own converter: what peewee's cursor wrapper makes, without its per-attribute
    bookkeeping (an instance per row read back cost a worker more CPU than its statement)."""
    instance = model.__new__(model)
    instance.__data__ = {f.name: f.python_value(v) for f, v in zip(fields, values, strict=True)}
    instance._dirty = set()  # type: ignore[attr-defined]
    instance.__rel__ = {}
    return instance
