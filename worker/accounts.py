"""Accounts and their users, as an operator creates and lists them."""

from __future__ import annotations

from typing import Any

from storage import clock
from storage.db import write_transaction
from storage.errors import InvalidInput, NotFound
from storage.models.accounts import Account, User, validate_timezone
from worker.addresses import normalise_email, normalise_phone

# The zone of an account created without one: its "day" is the UTC day.
DEFAULT_TIMEZONE = "UTC"
# As the name columns hold.
MAX_NAME = 200


def checked_name(raw: str | None, what: str) -> str:
    name = (raw or "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"{what} name must be 1 to {MAX_NAME} characters")
    return name


def require_account(account_id: int) -> Account:
    account: Account | None = Account.get_or_none(Account.id == account_id)
    if account is None:
        raise NotFound(f"account {account_id} does not exist")
    return account


def account_summary(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "name": account.name,
        "timezone": account.timezone,
        "created_at": clock.as_utc(account.created_at).isoformat(),
    }


def user_summary(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "account_id": user.account_id,
        "name": user.name,
        "email": user.email,
        "phone": user.phone,
        "external_id": user.external_id,
        "created_at": clock.as_utc(user.created_at).isoformat(),
    }


def create_account(name: str, timezone: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """A new account; `timezone` is an IANA zone (its calendar day is the day of daily limits)."""
    name = checked_name(name, "account")
    zone = validate_timezone((timezone or "").strip())
    with write_transaction():
        account = Account.create(name=name, timezone=zone, created_at=clock.now())
    return account_summary(account)


def list_accounts() -> list[dict[str, Any]]:
    return [account_summary(a) for a in Account.select().order_by(Account.id)]


def create_user(
    account_id: int, name: str, *, email: str | None = None, phone: str | None = None
) -> dict[str, Any]:
    """A new user of an account, with the email and phone normalised as everywhere else."""
    name = checked_name(name, "user")
    email = normalise_email(email)
    phone = normalise_phone(phone)
    with write_transaction():
        require_account(account_id)
        user = User.create(
            account=account_id, name=name, email=email, phone=phone, created_at=clock.now()
        )
    return user_summary(user)


def list_users(account_id: int) -> list[dict[str, Any]]:
    require_account(account_id)
    users = User.select().where(User.account == account_id).order_by(User.id)
    return [user_summary(u) for u in users]
