"""`outreach status`: queues and dead letters, the outbox, campaigns, and the schedules."""

from __future__ import annotations

from typing import Any

import click

from producers.cli.context import boot, print_json, print_table


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status_command(as_json: bool) -> None:
    """Queue depths and dead letters, outbox by status, campaigns in progress, last fires."""
    boot()
    import dramatiq

    from producers.scheduler.schedules import load_schedules
    from producers.status import collect
    from storage import clock
    from storage.db import database
    from storage.settings import get_settings

    schedules = load_schedules(get_settings())
    with database.connection_context():
        report = collect(dramatiq.get_broker(), schedules, clock.now())
    if as_json:
        print_json(report)
        return
    _print(report)


def _print(report: dict[str, Any]) -> None:
    if report["broker"] == "embedded":
        click.echo("broker: in-process (no REDIS_URL): no queues outside this command")
    else:
        print_table(
            "Queues",
            ["queue", "ready", "in flight", "delayed", "dead"],
            [
                [q["queue"], q["ready"], q["in_flight"], q["delayed"], q["dead"]]
                for q in report["queues"]
            ],
        )
    print_table("Outbox", ["status", "messages"], [list(i) for i in report["outbox"].items()])
    if report["campaigns"] is not None:
        print_table(
            "Campaigns in progress",
            ["id", "name", "status", "batches", "next batch", "recipients"],
            [
                [
                    c["id"],
                    c["name"],
                    c["status"],
                    c["batches"],
                    c["next_batch_at"],
                    " ".join(f"{k}={v}" for k, v in sorted(c["recipients"].items())),
                ]
                for c in report["campaigns"]
            ],
        )
    print_table(
        "Schedules",
        ["schedule", "cron", "zone", "last fire", "error", "next fire"],
        [
            [
                s["name"],
                s["cron"],
                s["timezone"],
                s["last_fire_time"] or "never",
                s.get("last_error"),
                s["next_fire_time"],
            ]
            for s in report["schedules"]
        ],
    )


def register(group: click.Group) -> None:
    group.add_command(status_command)
