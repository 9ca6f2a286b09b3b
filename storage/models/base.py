"""The base model and the field types every model shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from peewee import (
    AutoField,
    BigIntegerField,
    CharField,
    DateTimeField,
    Field,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

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

# Field types whose value both drivers already hand out as Python wants it (text as str, whole
# numbers as int): no converter is called for them. Exact types only, not their subclasses
# (JSON kept as text converts).
_PLAIN = (AutoField, CharField, TextField, IntegerField, BigIntegerField)


def _converter(field: Field) -> Callable[[Any], Any] | None:
    target = field.rel_field if isinstance(field, ForeignKeyField) else field
    return None if type(target) in _PLAIN else field.python_value


class RowReader(Generic[M]):
    """Instances of `model` from rows of values for `fields` (in that order), each through its
    field's own converter: what peewee's cursor wrapper makes, without its per-attribute
    bookkeeping (an instance per row read back cost a worker more CPU than its statement).
    Made once per shape of row."""

    def __init__(self, model: type[M], fields: Sequence[Field]) -> None:
        self.model = model
        self.converters = tuple((f.name, _converter(f)) for f in fields)

    def __call__(self, values: Sequence[Any]) -> M:
        instance = self.model.__new__(self.model)
        instance.__data__ = {
            name: value if value is None or convert is None else convert(value)
            for (name, convert), value in zip(self.converters, values, strict=True)
        }
        instance._dirty = set()  # type: ignore[attr-defined]
        instance.__rel__ = {}
        return instance
