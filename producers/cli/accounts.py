"""Commands about accounts and their users.

``outreach account create|list``, ``outreach user create|list`` and
``outreach users import --account ID FILE.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from producers.cli.context import EXIT_ROWS_REJECTED, ID, boot, print_json, print_table


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


@click.group()
def users() -> None:
    """Users in bulk: the members the daily engagement run looks after."""


@users.command("import")
@click.option("--account", "account_id", type=ID, required=True, help="Id of the account.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def users_import(account_id: int, file: Path, as_json: bool) -> None:
    """Create or update an account's members from a CSV file, matched on external_id.

    Columns: external_id, name (needed); email, phone, whatsapp_id, group_id,
    preferred_destination (individual or group), locale, opt_out (yes/no), last_activity
    (ISO 8601). Bad rows are listed and skipped; exit status 1 when some were.
    """
    from worker.users_import import import_users

    report = _in_database(import_users, account_id, file)
    if as_json:
        print_json(
            {
                "account_id": report.account_id,
                "imported": report.imported,
                "created": report.created,
                "updated": report.updated,
                "rejected": [{"line": b.line, "reason": b.reason} for b in report.bad_rows],
                "stopped": report.stopped,
            }
        )
    else:
        click.echo(
            f"account {report.account_id}: {report.imported} imported "
            f"({report.created} new, {report.updated} updated), "
            f"{len(report.bad_rows)} rejected"
        )
        for bad in report.bad_rows:
            click.echo(f"line {bad.line}: {bad.reason}", err=True)
    if report.stopped:
        click.echo(f"error: {report.stopped}", err=True)
    if report.bad_rows or report.stopped:
        sys.exit(EXIT_ROWS_REJECTED)


def register(group: click.Group) -> None:
    group.add_command(account)
    group.add_command(user)
    group.add_command(users)
