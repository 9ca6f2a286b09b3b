"""The base model and the field types every model shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from peewee import DateTimeField, Model

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
