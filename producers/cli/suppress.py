"""Commands about the suppression list: addresses an account never writes to again.

``outreach suppress add|remove|list|import``.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from producers.cli.context import COUNT, EXIT_ROWS_REJECTED, ID, boot, print_json, print_table


@click.group()
def suppress() -> None:
    """The suppression list (opt-outs, unsubscribes, bounces, operators' blocks)."""


def _require_account(account_id: int) -> None:
    from storage.errors import NotFound
    from storage.models import Account

    if not Account.select().where(Account.id == account_id).exists():
        raise NotFound(f"account {account_id} does not exist")


@suppress.command("add")
@click.option("--account", "account_id", type=ID, required=True, help="The account.")
@click.option("--channel", required=True, help="Where it was asked: whatsapp, email, ...")
@click.option("--address", required=True, help="Phone number, WhatsApp id or email address.")
@click.option("--reason", default="operator", show_default=True, help="Why.")
@click.option(
    "--by",
    default=lambda: os.environ.get("USER") or getpass.getuser(),
    show_default="$USER",
    help="Who asks.",
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def add(account_id: int, channel: str, address: str, reason: str, by: str, as_json: bool) -> None:
    """Never send to ADDRESS again for the account, on any channel, by any kind of work."""
    boot()
    from storage.db import database
    from storage.models.consent import normalise_address
    from worker.consent.suppression import suppress as add_suppression

    with database.connection_context():
        _require_account(account_id)
        added = add_suppression(account_id, channel, address, reason, f"command by {by}")
    data = {"account": account_id, "address": normalise_address(address), "added": added}
    if as_json:
        print_json(data)
    else:
        click.echo(f"{'suppressed' if added else 'already suppressed'}: {data['address']}")


@suppress.command("remove")
@click.option("--account", "account_id", type=ID, required=True, help="The account.")
@click.option("--address", required=True, help="Phone number, WhatsApp id or email address.")
@click.option("--channel", default=None, help="Only the suppression heard on this channel.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def remove(account_id: int, address: str, channel: str | None, as_json: bool) -> None:
    """Lift the address's suppression (for example one added by mistake)."""
    boot()
    from storage.db import database
    from storage.errors import NotFound
    from worker.consent.suppression import lift

    with database.connection_context():
        _require_account(account_id)
        removed = lift(account_id, address, channel)
    if not removed:
        raise NotFound(f"{address!r} is not suppressed in account {account_id}")
    if as_json:
        print_json({"account": account_id, "removed": removed})
    else:
        click.echo(f"removed {removed} suppression(s)")


@suppress.command("list")
@click.option("--account", "account_id", type=ID, required=True, help="The account.")
@click.option("--limit", type=COUNT, default=100, show_default=True, help="Rows shown at most.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_command(account_id: int, limit: int, as_json: bool) -> None:
    """The account's suppressed addresses, newest first (masked in the table)."""
    boot()
    from storage.db import database
    from storage.models.consent import Suppression
    from worker.masking import mask

    with database.connection_context():
        _require_account(account_id)
        rows = [
            {
                "channel": s.channel,
                "address": s.address,
                "reason": s.reason,
                "source": s.source,
                "created_at": s.created_at.isoformat(),
            }
            for s in Suppression.select()
            .where(Suppression.account_id == account_id)
            .order_by(Suppression.id.desc())
            .limit(limit)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(f"account {account_id} has no suppressed address")
        return
    print_table(
        f"Suppressed addresses of account {account_id}",
        ["channel", "address", "reason", "source", "since"],
        [
            [r["channel"], mask(r["address"]), r["reason"], r["source"], r["created_at"]]
            for r in rows
        ],
    )


@suppress.command("import")
@click.option("--account", "account_id", type=ID, required=True, help="The account.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--reason", default="operator", show_default=True, help="For rows without a reason column."
)
@click.option(
    "--by",
    default=lambda: os.environ.get("USER") or getpass.getuser(),
    show_default="$USER",
    help="Who asks.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_command(account_id: int, file: Path, reason: str, by: str, as_json: bool) -> None:
    """Suppress a CSV file's addresses in the account; bad rows are listed and skipped.

    The header row names the columns: address (needed), channel, reason. Exit status 1 when
    some rows were skipped.
    """
    boot()
    from storage.db import database
    from worker.consent.importing import import_suppressions

    with database.connection_context():
        report = import_suppressions(
            account_id, file, reason, source=f"import of {file.name} by {by}"
        )
    rejected = [{"line": b.line, "reason": b.reason} for b in report.bad_rows]
    if as_json:
        print_json(
            {
                "account": account_id,
                "imported": report.imported,
                "already": report.already,
                "rejected": rejected,
            }
        )
    else:
        click.echo(
            f"account {account_id}: {report.imported} suppressed, {report.already} already "
            f"suppressed, {len(rejected)} rejected"
        )
        for bad in report.bad_rows:
            click.echo(f"line {bad.line}: {bad.reason}", err=True)
    if report.bad_rows:
        sys.exit(EXIT_ROWS_REJECTED)


def register(group: click.Group) -> None:
    group.add_command(suppress)
