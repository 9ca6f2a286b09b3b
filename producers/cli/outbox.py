"""Commands about the outbox: send one message by hand, look at rows."""

from __future__ import annotations

import click

from producers.cli.context import boot, print_json


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


def register(group: click.Group) -> None:
    group.add_command(outbox)
