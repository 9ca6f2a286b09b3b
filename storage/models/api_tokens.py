"""API tokens: what a caller of the JSON API presents, one per account and purpose.

Only a hash of each token is kept. A token reads ``otk_<id>_<secret>``: the id is not secret
and finds the one row to compare with, so the comparison is on that row's hash alone.
"""

from __future__ import annotations

from peewee import AutoField, CharField, ForeignKeyField

from storage.models.accounts import Account
from storage.models.base import BaseModel, UTCDateTimeField


class ApiToken(BaseModel):
    id = AutoField()
    account = ForeignKeyField(Account, backref="api_tokens", on_delete="CASCADE", index=False)
    account_id: int
    # What the token is for ("cron", "crm"); unique per account, revoked tokens included.
    name = CharField(max_length=100)
    # The token's public part (hex): shown by `api-token list`, used to revoke it.
    token_id = CharField(max_length=32, unique=True)
    # SHA-256 of the whole token, hex.
    hash = CharField(max_length=64)
    created_at = UTCDateTimeField()
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "api_token"
        indexes = ((("account", "name"), True),)
