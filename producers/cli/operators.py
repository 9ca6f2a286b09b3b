"""`outreach operator add|passwd`: the users who log in to the operator console."""

from __future__ import annotations

import sys

import click

from producers.cli.context import ID, boot, check_text, print_json
from storage.errors import InvalidInput


def _read_password(from_stdin: bool) -> str:
    """One line from stdin (scripts), else asked twice on the terminal, never echoed."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidInput("no password on stdin")
    else:
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt=True, prompt_suffix=": "
        )
    check_text(password, "the password")
    return password


@click.group()
def operator() -> None:
    """Operators: users of an account who log in to the console (`outreach web`)."""


@operator.command("add")
@click.option("--account", "account_id", type=ID, required=True, help="Id of the account.")
@click.option("--email", required=True, help="The email the operator logs in with.")
@click.option("--password-stdin", "from_stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--json", "as_json", is_flag=True, help="Print the operator as JSON.")
def add_command(account_id: int, email: str, from_stdin: bool, as_json: bool) -> None:
    """Make the account's user with EMAIL an operator (created if missing), with a password."""
    boot()
    from producers.operators import add_operator
    from storage.db import database

    password = _read_password(from_stdin)
    with database.connection_context():
        created = add_operator(account_id, email, password)
    if as_json:
        print_json(created)
    else:
        click.echo(f"operator {created['id']} ({created['email']}) added to account {account_id}")


@operator.command("passwd")
@click.argument("user_id", type=ID)
@click.option("--password-stdin", "from_stdin", is_flag=True, help="Read the password from stdin.")
def passwd_command(user_id: int, from_stdin: bool) -> None:
    """Set USER_ID's console password (their open sessions end)."""
    boot()
    from producers.operators import set_password
    from storage.db import database

    password = _read_password(from_stdin)
    with database.connection_context():
        set_password(user_id, password)
    click.echo(f"password of user {user_id} set")


def register(group: click.Group) -> None:
    group.add_command(operator)
