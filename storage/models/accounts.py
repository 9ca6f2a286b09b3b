"""Accounts (a team, with its time zone) and their users."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from peewee import AutoField, CharField, ForeignKeyField

from storage.errors import InvalidInput
from storage.models.base import BaseModel, UTCDateTimeField


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r}") from None
    return name


class Account(BaseModel):
    id = AutoField()
    name = CharField(max_length=200)
    # The "day" of every daily limit is this zone's calendar day.
    timezone = CharField(max_length=64, default="UTC")
    # When its messages may go out, in its zone ("mon-sat 09:00-20:00"; None: the default).
    sending_hours = CharField(max_length=100, null=True)
    created_at = UTCDateTimeField()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class User(BaseModel):
    id = AutoField()
    account = ForeignKeyField(Account, backref="users", on_delete="CASCADE")
    account_id: int
    name = CharField(max_length=200)
    email = CharField(max_length=320, null=True)
    phone = CharField(max_length=32, null=True)
    # The product's own id for this user; an import matches on it (unique per account).
    external_id = CharField(max_length=128, null=True)
    # An argon2 hash (producers.operators): set, the user is an operator who logs in to the
    # console with this email.
    password_hash = CharField(max_length=255, null=True)
    created_at = UTCDateTimeField()

    class Meta:
        # "user" is a reserved word in PostgreSQL.
        table_name = "app_user"
        indexes = (
            (("account", "external_id"), True),
            # Who wrote to us: a member found by the number a reply came from.
            (("account", "phone"), False),
        )
