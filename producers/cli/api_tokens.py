"""``outreach api-token create|list|revoke``: the bearer tokens of the JSON API."""

from __future__ import annotations

from typing import Any

import click

from producers.cli.context import ID, boot, print_json, print_table


def _in_database(work: Any, *args: Any) -> Any:
    boot()
    from storage.db import database

    with database.connection_context():
        return work(*args)


@click.group("api-token")
def api_token() -> None:
    """Tokens that callers of /api/ present (Authorization: Bearer ...), one per purpose."""


@api_token.command("create")
@click.option("--account", "account_id", type=ID, required=True, help="Id of the account.")
@click.option("--name", required=True, help="What the token is for, e.g. cron (unique).")
@click.option("--json", "as_json", is_flag=True, help="Print the token and its details as JSON.")
def create(account_id: int, name: str, as_json: bool) -> None:
    """Create a token; it is printed this once and never again (only its hash is kept)."""
    from producers.api_tokens import create_token

    created = _in_database(create_token, account_id, name)
    if as_json:
        print_json(created)
        return
    click.echo(f"API token {created['id']} ({created['name']}) created for account {account_id}")
    click.echo("Keep it now, it is not shown again:", err=True)
    click.echo(created["token"])


@api_token.command("list")
@click.option("--account", "account_id", type=ID, default=None, help="Only this account's.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_command(account_id: int | None, as_json: bool) -> None:
    """Tokens by account (never the tokens themselves): created, last used, revoked."""
    from producers.api_tokens import list_tokens

    tokens = _in_database(list_tokens, account_id)
    if as_json:
        print_json(tokens)
        return

    def minute(value: str | None) -> str:
        return value[:16].replace("T", " ") if value else ""

    rows = [
        [
            t["id"],
            t["account_id"],
            t["name"],
            minute(t["created_at"]),
            minute(t["last_used_at"]),
            minute(t["revoked_at"]),
        ]
        for t in tokens
    ]
    print_table(
        "API tokens",
        ["id", "account", "name", "created (UTC)", "last used", "revoked"],
        rows,
    )


@api_token.command("revoke")
@click.argument("token_id")
def revoke(token_id: str) -> None:
    """Refuse a token from now on (TOKEN_ID as `api-token list` shows it)."""
    from producers.api_tokens import revoke_token

    revoked = _in_database(revoke_token, token_id)
    click.echo(f"API token {revoked['id']} ({revoked['name']}) revoked")


def register(group: click.Group) -> None:
    group.add_command(api_token)
