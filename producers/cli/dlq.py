"""`outreach dlq list|requeue`: Dramatiq's dead-lettered messages on Redis."""

from __future__ import annotations

import click
from rich.progress import track

from producers.cli.context import boot, console, print_json, print_table
from storage.errors import InvalidInput


@click.group()
def dlq() -> None:
    """Dead-lettered messages (kept 7 days in Redis): list them, requeue them on purpose."""


@dlq.command("list")
@click.option("--queue", default=None, help="Only this queue.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_command(queue: str | None, as_json: bool) -> None:
    """Every dead message: id, queue, actor, its id arguments, when and why it died."""
    boot()
    from producers.dlq import list_dead, redis_broker

    dead = [d.describe() for d in list_dead(redis_broker(), queue)]
    if as_json:
        print_json(dead)
        return
    print_table(
        "Dead letters",
        ["message id", "queue", "actor", "args", "died at", "error"],
        [
            [d["message_id"], d["queue"], d["actor"], d["args"], d["died_at"], d["error"]]
            for d in dead
        ],
    )


@dlq.command("requeue")
@click.argument("message_id", required=False)
@click.option("--all", "requeue_all", is_flag=True, help="Requeue every dead message.")
@click.option("--json", "as_json", is_flag=True, help="Print what was requeued as JSON.")
def requeue_command(message_id: str | None, requeue_all: bool, as_json: bool) -> None:
    """Put MESSAGE_ID (or --all) back on its queue, with a fresh retry count.

    The unit of work runs again (every actor is safe to run twice). A delivery whose outbox row
    was already recorded `failed` is not sent again by a requeue.
    """
    if bool(message_id) == requeue_all:
        raise InvalidInput("give one MESSAGE_ID or --all")
    boot()
    from producers.dlq import find_dead, list_dead, redis_broker, requeue

    broker = redis_broker()
    targets = list_dead(broker) if requeue_all else [find_dead(broker, message_id or "")]
    if not requeue_all and not targets[0].readable:
        raise InvalidInput(
            f"dead message {message_id} is not a Dramatiq message ({targets[0].error}); "
            "it cannot be requeued"
        )
    if len(targets) > 1 and not as_json:
        targets_iter = track(targets, description="requeueing", console=console)
    else:
        targets_iter = iter(targets)
    done = [d.describe() for d in targets_iter if requeue(broker, d)]
    if as_json:
        print_json({"requeued": done})
        return
    for d in done:
        click.echo(f"requeued {d['message_id']} ({d['actor']} on {d['queue']})")
    if not done:
        click.echo("nothing to requeue")


def register(group: click.Group) -> None:
    group.add_command(dlq)
