"""Commands about the outbox: send one message by hand, review the ones left `unknown`."""

from __future__ import annotations

import getpass
import os

import click

from producers.cli.context import COUNT, ID, boot, print_json, print_table


@click.group()
def outbox() -> None:
    """The outbox of outbound messages."""


@outbox.command("send")
@click.option("--key", "idempotency_key", required=True, help="Idempotency key (unique).")
@click.option("--channel", required=True, help="log, email, whatsapp or webhook.")
@click.option("--to", "recipient", required=True, help="Phone, email or WhatsApp id.")
@click.option("--body", required=True, help="Message text.")
@click.option("--json", "as_json", is_flag=True, help="Print the row as JSON.")
def send(idempotency_key: str, channel: str, recipient: str, body: str, as_json: bool) -> None:
    """Queue one message through the outbox (a second call with the same key does nothing)."""
    boot()
    from producers.embedded import drain
    from storage.db import database
    from worker.outbox import queue_message

    with database.connection_context():
        row = queue_message(idempotency_key, channel, recipient, body, source="manual")
    drain()
    with database.connection_context():
        row = type(row).get_by_id(row.id)
    data = {"id": row.id, "key": row.idempotency_key, "status": row.status}
    if as_json:
        print_json(data)
    else:
        click.echo(f"outbox message {row.id} ({row.idempotency_key}): {row.status}")


@outbox.command("review")
@click.option("--limit", type=COUNT, default=100, show_default=True, help="Rows shown at most.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def review(limit: int, as_json: bool) -> None:
    """Messages left `unknown` (the send died mid-way): decide with `outbox resolve`."""
    boot()
    from producers.outbox_review import unknown_messages
    from storage.db import database
    from worker.masking import mask

    with database.connection_context():
        rows = [
            {
                "id": row.id,
                "key": row.idempotency_key,
                "channel": row.channel,
                "recipient": mask(row.recipient),
                "source": row.source,
                "attempts": row.attempts,
                "claimed_at": row.claimed_at.isoformat() if row.claimed_at else None,
                "error": row.last_error,
            }
            for row in unknown_messages(limit)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no outbox message is waiting for review")
        return
    print_table(
        "Outbox messages to review (unknown outcome)",
        ["id", "key", "channel", "recipient", "source", "attempts", "send started", "error"],
        [list(r.values()) for r in rows],
    )
    click.echo("resolve each: outreach outbox resolve ID --mark-sent|--resend --reason TEXT")


@outbox.command("resolve")
@click.argument("outbox_id", type=ID)
@click.option("--mark-sent", "mark_sent", is_flag=True, help="It did go out: record it sent.")
@click.option("--resend", is_flag=True, help="Send it again on purpose (may arrive twice).")
@click.option("--reason", default="", help="Why (kept with the row and logged).")
@click.option(
    "--by",
    default=lambda: os.environ.get("USER") or getpass.getuser(),
    show_default="$USER",
    help="Who decides.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the row as JSON.")
def resolve_command(
    outbox_id: int, mark_sent: bool, resend: bool, reason: str, by: str, as_json: bool
) -> None:
    """Settle an `unknown` message: --mark-sent or --resend, with --reason."""
    from storage.errors import InvalidInput

    if mark_sent == resend:
        raise InvalidInput("choose one of --mark-sent or --resend")
    boot()
    from producers.embedded import drain
    from producers.outbox_review import MARK_SENT, RESEND, resolve
    from storage.db import database

    with database.connection_context():
        row = resolve(outbox_id, MARK_SENT if mark_sent else RESEND, by, reason)
    drain()  # embedded mode: a resend is delivered by this process
    with database.connection_context():
        row = type(row).get_by_id(row.id)
    data = {"id": row.id, "key": row.idempotency_key, "status": row.status, "note": row.last_error}
    if as_json:
        print_json(data)
    else:
        click.echo(f"outbox message {row.id} ({row.idempotency_key}): {row.status}")


def register(group: click.Group) -> None:
    group.add_command(outbox)
