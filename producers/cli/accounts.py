"""Commands about accounts and their users.

``outreach account create|list``, ``outreach user create|list`` and
``outreach users import --account ID FILE.csv``.
"""

from __future__ import annotations

from typing import Any

import click

from producers.cli.context import ID, boot, print_json, print_table


def _in_database(work: Any, *args: Any, **kwargs: Any) -> Any:
    boot()
    from storage.db import database

    with database.connection_context():
        return work(*args, **kwargs)


@click.group()
def account() -> None:
    """Accounts: a team, with the time zone whose day its daily limits count."""


@account.command("create")
@click.option("--name", required=True, help="The account's name.")
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    help="An IANA time zone, e.g. Europe/Paris.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new account as JSON.")
def account_create(name: str, timezone: str, as_json: bool) -> None:
    """Create an account; prints its id."""
    from worker.accounts import create_account

    created = _in_database(create_account, name, timezone)
    if as_json:
        print_json(created)
    else:
        click.echo(f"account {created['id']} ({created['name']}, {created['timezone']}) created")


@account.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def account_list(as_json: bool) -> None:
    """Every account, by id."""
    from worker.accounts import list_accounts

    accounts = _in_database(list_accounts)
    if as_json:
        print_json(accounts)
        return
    rows = [[a["id"], a["name"], a["timezone"], a["created_at"][:16]] for a in accounts]
    print_table("Accounts", ["id", "name", "time zone", "created (UTC)"], rows)


@click.group()
def user() -> None:
    """Users of an account: campaign owners and the members engagement looks after."""


@user.command("create")
@click.option("--account", "account_id", type=ID, required=True, help="Id of the account.")
@click.option("--name", required=True, help="The user's name.")
@click.option("--email", default=None, help="Email address (checked, lower-cased).")
@click.option("--phone", default=None, help="Phone number (checked; separators dropped).")
@click.option("--json", "as_json", is_flag=True, help="Print the new user as JSON.")
def user_create(
    account_id: int, name: str, email: str | None, phone: str | None, as_json: bool
) -> None:
    """Create a user of an account; prints its id."""
    from worker.accounts import create_user

    created = _in_database(create_user, account_id, name, email=email, phone=phone)
    if as_json:
        print_json(created)
    else:
        click.echo(f"user {created['id']} ({created['name']}) created in account {account_id}")


@user.command("list")
@click.option("--account", "account_id", type=ID, required=True, help="Id of the account.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def user_list(account_id: int, as_json: bool) -> None:
    """The users of an account, by id."""
    from worker.accounts import list_users

    users = _in_database(list_users, account_id)
    if as_json:
        print_json(users)
        return
    rows = [
        [u["id"], u["name"], u["email"], u["phone"], u["external_id"], u["created_at"][:16]]
        for u in users
    ]
    print_table(
        f"Users of account {account_id}",
        ["id", "name", "email", "phone", "external id", "created (UTC)"],
        rows,
    )


def register(group: click.Group) -> None:
    group.add_command(account)
    group.add_command(user)
