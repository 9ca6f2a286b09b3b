"""`outreach demo`: the whole system on a laptop, four simulated days in a few seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from producers.cli.context import print_json

# Exit status when the demo ran but found that something did not go as it should.
EXIT_DEMO_FAILED = 1


@click.command("demo")
@click.option(
    "--database",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write the demo's SQLite file (must not exist); a new temporary directory "
    "if unset. The JSON log goes next to it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def demo(database: Path | None, as_json: bool) -> None:
    """Run the whole system on sample data over four simulated days, and report each day.

    A fresh SQLite file, the in-process broker and worker, every send on the log channel:
    no Redis, no PostgreSQL, nothing leaves the machine (REDIS_URL and DATABASE_URL are
    ignored). The real schedules fire on a simulated clock.
    """
    from producers.demo import report
    from producers.demo.run import run_demo

    # Soft wrap: long lines (paths, commands) stay whole for copying; the terminal wraps them.
    console = Console(highlight=False, soft_wrap=True)
    # run_demo refuses a bad --database (one line, exit 2) before it writes anything.
    if as_json:
        result = run_demo(database)
        print_json(result)
    else:
        result = run_demo(
            database,
            on_start=lambda setup: report.print_start(setup, console),
            on_day=lambda day: report.print_day(day, console),
            on_paced=lambda paced: report.print_paced(paced, console),
        )
        report.print_summary(result, console)
    problems = result["summary"]["problems"]
    if problems:
        click.echo(f"error: the demo found a problem: {'; '.join(problems)}", err=True)
        sys.exit(EXIT_DEMO_FAILED)


def register(group: click.Group) -> None:
    group.add_command(demo)
