"""Commands about engagement: the daily run (cron entry point), its report, users' answers."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import click

from producers.cli.context import COUNT, ID, boot, print_json, print_table

# Exit status of `run-daily --wait` when users failed or the run did not finish in time.
EXIT_RUN_FAILED = 1
# How often `--wait` looks at the run's progress.
WAIT_INTERVAL_SECONDS = 0.5


@click.group()
def engagement() -> None:
    """Daily engagement: inactivity goodbyes, timeouts and reminders (seed 004)."""


def _result(run_id: int) -> dict[str, Any]:
    from storage.db import database
    from worker.engagement.runs import job_result

    with database.connection_context():
        return job_result(run_id)


@engagement.command("run-daily")
@click.option("--wait", is_flag=True, help="Wait for every user's outcome and print the result.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds --wait waits before giving up.",
)
def run_daily_command(wait: bool, timeout: float) -> None:
    """Run the daily engagement job now; prints the run id.

    With --wait, prints the JobResult as JSON and exits 0 only if no user failed.
    """
    if not math.isfinite(timeout):  # FloatRange lets NaN and infinity through
        raise click.BadParameter(f"{timeout} is not a number of seconds", param_hint="'--timeout'")
    boot()
    from producers.embedded import drain
    from producers.engagement import run_daily
    from storage import clock

    started = run_daily(clock.now())
    run_id = started["run_id"]
    click.echo(run_id)
    click.echo(
        f"engagement run {run_id}: {started['enqueued']} users enqueued, "
        f"{started['skipped_opted_out']} skipped (opted out)",
        err=True,
    )
    drain()  # embedded mode: this process does the work; a no-op with Redis
    if not wait:
        return
    deadline = time.monotonic() + timeout
    result = _result(run_id)
    while not result["finished"] and time.monotonic() < deadline:
        time.sleep(WAIT_INTERVAL_SECONDS)
        result = _result(run_id)
    print_json(result)
    if not result["finished"]:
        click.echo(f"error: run {run_id} did not finish within {timeout:g} s", err=True)
        sys.exit(EXIT_RUN_FAILED)
    if result["failed"]:
        sys.exit(EXIT_RUN_FAILED)


@engagement.command("report")
@click.argument("run_id", type=ID)
@click.option("--json", "as_json", is_flag=True, help="Print the JobResult as JSON.")
def report(run_id: int, as_json: bool) -> None:
    """What a daily run did so far (from every worker's outcomes)."""
    boot()
    result = _result(run_id)
    if as_json:
        print_json(result)
        return
    status = "finished" if result["finished"] else f"running ({result['pending']} pending)"
    click.echo(f"engagement run {run_id}: {status}, {result['durationMs']} ms")
    rows = [
        [check, counts["succeeded"], counts["failed"], counts["skipped"]]
        for check, counts in sorted(result["by_check"].items())
    ]
    rows.append(["total", result["succeeded"], result["failed"], result["skipped"]])
    print_table("Outcomes", ["check", "succeeded", "failed", "skipped"], rows)
    if result["errors"]:
        print_table(
            "Errors",
            ["user", "check", "error"],
            [[e["userId"], e["check"], e["error"]] for e in result["errors"]],
        )


@engagement.command("activity")
@click.argument("user_id", type=ID)
def activity(user_id: int) -> None:
    """Record that a user was active: they are `active` again, whatever their state."""
    boot()
    from storage.db import database
    from worker.engagement.users import record_activity

    with database.connection_context():
        transition = record_activity(user_id)
    click.echo(
        f"user {user_id}: {transition.from_state} -> {transition.to_state} "
        f"(last activity {transition.at.isoformat()})"
    )


@engagement.command("answer")
@click.argument("user_id", type=ID)
@click.argument("answer", type=click.Choice(["come-back", "remind-later", "stop"]))
@click.option(
    "--remind-in-days",
    type=COUNT,
    default=None,
    help="With remind-later: days until the reminder is due (default 7, at most 365).",
)
def answer_command(user_id: int, answer: str, remind_in_days: int | None) -> None:
    """Record the user's answer to the goodbye: come-back, remind-later or stop."""
    boot()
    from storage.db import database
    from storage.models.engagement import EngagementState
    from worker.engagement.answers import answer_goodbye

    with database.connection_context():
        transition = answer_goodbye(user_id, answer, remind_in_days)
        row = EngagementState.get(EngagementState.user == user_id)
    if answer == "remind-later":
        what = f"reminder due {row.remind_at.isoformat()}"
    elif answer == "stop":
        what = "opted out of re-engagement"
    else:
        what = f"last activity {row.last_activity_at.isoformat()}"
    click.echo(f"user {user_id}: {transition.from_state} -> {transition.to_state} ({what})")


def register(group: click.Group) -> None:
    group.add_command(engagement)
