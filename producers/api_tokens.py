"""Per-account API tokens: created once (shown once), kept hashed, checked in constant time.

A token is ``otk_<id>_<secret>``: 6 random bytes of public id (hex) and 32 random bytes of
secret (URL-safe base64). The row keeps SHA-256 of the whole token. A fast hash is right here,
unlike for passwords: a 256-bit random secret cannot be guessed from its hash however fast the
hash is (argon2 and bcrypt are slow to protect guessable passwords), and a slow hash on every
API call would hand anyone who can reach the port a cheap way to burn the server's CPU.

The id finds the one row; the hashes are then compared with ``hmac.compare_digest``. A token
whose id names no row is compared with a stand-in hash all the same, so a caller learns
nothing from how long a refusal takes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from peewee import IntegrityError

from storage import clock
from storage.db import write_transaction
from storage.errors import InvalidInput, InvalidState, NotFound
from storage.models.api_tokens import ApiToken
from worker.accounts import require_account

PREFIX = "otk"
# Random bytes of the public id and of the secret.
ID_BYTES = 6
SECRET_BYTES = 32
# As the name column holds.
MAX_NAME = 100
# `last_used_at` is written at most this often per token (not a write per request).
LAST_USED_PRECISION = timedelta(minutes=1)
# Compared with when the id names no token: the hash of nothing anyone holds.
_STAND_IN_HASH = hashlib.sha256(secrets.token_bytes(SECRET_BYTES)).hexdigest()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def _token_id(token: str) -> str | None:
    """The public id of a well-formed token, else None."""
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(token_id) != ID_BYTES * 2 or not secret:
        return None
    if any(c not in "0123456789abcdef" for c in token_id):
        return None
    return token_id


def summary(row: ApiToken) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return clock.as_utc(value).isoformat() if value is not None else None

    return {
        "id": row.token_id,
        "account_id": row.account_id,
        "name": row.name,
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "revoked_at": iso(row.revoked_at),
    }


def create_token(account_id: int, name: str) -> dict[str, Any]:
    """A new token for the account: its summary, and the token itself under ``token`` (the
    only time it is ever seen)."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a token name must be 1 to {MAX_NAME} characters")
    token_id = secrets.token_hex(ID_BYTES)
    token = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    with write_transaction():
        require_account(account_id)
        if ApiToken.get_or_none((ApiToken.account == account_id) & (ApiToken.name == name)):
            raise InvalidState(
                f"account {account_id} already has a token named {name!r} "
                "(revoked tokens keep their name)"
            )
        try:
            row = ApiToken.create(
                account=account_id,
                name=name,
                token_id=token_id,
                hash=hash_token(token),
                created_at=clock.now(),
            )
        except IntegrityError:  # created by someone else between the check and the insert
            raise InvalidState(f"account {account_id} already has a token named {name!r}") from None
    return {**summary(row), "token": token}


def list_tokens(account_id: int | None = None) -> list[dict[str, Any]]:
    query = ApiToken.select().order_by(ApiToken.account, ApiToken.id)
    if account_id is not None:
        require_account(account_id)
        query = query.where(ApiToken.account == account_id)
    return [summary(row) for row in query]


def revoke_token(token_id: str) -> dict[str, Any]:
    """Refuse the token from now on; the row stays (who had it, when it was last used)."""
    token_id = (token_id or "").strip().removeprefix(f"{PREFIX}_").lower()
    with write_transaction():
        row = ApiToken.get_or_none(ApiToken.token_id == token_id)
        if row is None:
            raise NotFound(f"no API token {token_id}")
        if row.revoked_at is not None:
            raise InvalidState(f"API token {token_id} was already revoked at {row.revoked_at}")
        ApiToken.update(revoked_at=clock.now()).where(ApiToken.id == row.id).execute()
        return summary(ApiToken.get_by_id(row.id))


def authenticate(token: str | None) -> ApiToken | None:
    """The live token row that `token` is, or None: unknown, malformed, wrong or revoked."""
    token = token or ""
    token_id = _token_id(token)
    row = ApiToken.get_or_none(ApiToken.token_id == token_id) if token_id else None
    expected = row.hash if row is not None else _STAND_IN_HASH
    matches = hmac.compare_digest(hash_token(token), expected)
    if row is None or not matches or row.revoked_at is not None:
        return None
    now = clock.now()
    if row.last_used_at is None or row.last_used_at < now - LAST_USED_PRECISION:
        with write_transaction():
            ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
        row.last_used_at = now
    return row
