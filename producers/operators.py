"""Operators: users of an account who log in to the console with their email and a password.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile);
only the hash is stored. An operator's email is unique among operators, since it is what they
log in with.
"""

from __future__ import annotations

import hashlib
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from storage import clock
from storage.db import database, write_transaction
from storage.errors import InvalidInput, NotFound
from storage.models.accounts import User
from worker.accounts import require_account, user_summary
from worker.addresses import normalise_email
from worker.logging import get_logger

log = get_logger("outreach.operators")

# Shorter passwords are refused: a console password guards every campaign of an account.
MIN_PASSWORD_LENGTH = 12
# Longer ones are refused too: hashing megabytes on each login attempt is a denial of service.
MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()
# Verified against when the email is unknown, so an unknown email takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def session_stamp(user: User) -> str:
    """Changes whenever the password does: a session carries it, so a new password (or a
    removed one) ends every session opened before."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def _operator_by_email(email: str) -> User | None:
    user: User | None = User.get_or_none((User.email == email) & User.password_hash.is_null(False))
    return user


def add_operator(account_id: int, email: str, password: str) -> dict[str, Any]:
    """Make the account's user with this email an operator (creating the user if there is none)."""
    address = normalise_email(email)
    if address is None:
        raise InvalidInput("an email is required (the operator logs in with it)")
    check_password(password)
    hashed = _hasher.hash(password)
    with write_transaction():
        require_account(account_id)
        other = _operator_by_email(address)
        if other is not None and other.account_id != account_id:
            raise InvalidInput(f"{address} is already an operator of another account")
        if other is not None:
            raise InvalidInput(f"{address} is already an operator (user {other.id}): use passwd")
        user = User.get_or_none((User.account == account_id) & (User.email == address))
        if user is None:
            user = User.create(
                account=account_id, name=address, email=address, created_at=clock.now()
            )
        User.update(password_hash=hashed).where(User.id == user.id).execute()
    log.info("operator.added", user_id=user.id, account_id=account_id)
    return user_summary(User.get_by_id(user.id))


def set_password(user_id: int, password: str) -> None:
    """A new password for an operator; every session opened with the old one ends."""
    check_password(password)
    hashed = _hasher.hash(password)
    with write_transaction():
        user = User.get_or_none(User.id == user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        if not user.email:
            raise InvalidInput(f"user {user_id} has no email to log in with")
        other = _operator_by_email(user.email)
        if other is not None and other.id != user.id:
            raise InvalidInput(f"{user.email} is already the login of operator {other.id}")
        User.update(password_hash=hashed).where(User.id == user_id).execute()
    log.info("operator.password_set", user_id=user_id)


def authenticate(email: str, password: str) -> User | None:
    """The operator with this email and password, or None (unknown email or wrong password)."""
    address = (email or "").strip().lower()
    if not address or len(password) > MAX_PASSWORD_LENGTH:
        return None
    with database.connection_context():
        user = _operator_by_email(address)
        stored = str(user.password_hash) if user else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if _hasher.check_needs_rehash(stored):
            # Parameters raised since this hash was made: store it again with today's.
            with write_transaction():
                rehashed = _hasher.hash(password)
                User.update(password_hash=rehashed).where(User.id == user.id).execute()
            user = User.get_by_id(user.id)
    return user


def get_operator(user_id: int) -> User | None:
    """The operator with this id (None when it does not exist or is no longer an operator)."""
    user: User | None = User.get_or_none((User.id == user_id) & User.password_hash.is_null(False))
    return user
