"""`outreach enqueue engagement|hunt|campaign`: run a sweep or one unit of work now."""

from __future__ import annotations

from typing import Any

import click

from producers.cli.context import ID, boot, print_json

ENGAGEMENT = "producers.engagement.run_daily"
HUNT = "producers.hunts.enqueue_hunt"
CAMPAIGN = "producers.campaigns.enqueue_batch"


def _run(path: str, *args: Any) -> dict[str, Any]:
    boot()
    from producers.embedded import drain
    from producers.scheduler.schedules import resolve

    function = resolve(path)  # one line if the feature is not installed
    result = function(*args)
    drain()  # embedded mode: this process does the work; a no-op with Redis
    return dict(result)


def _show(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
    else:
        click.echo(" ".join(f"{key}={value}" for key, value in result.items()))


@click.group()
def enqueue() -> None:
    """Ad-hoc runs: the engagement sweep now, one hunt now, a campaign's due batch now."""


@enqueue.command("engagement")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def engagement(as_json: bool) -> None:
    """Start the daily engagement run now (what the scheduler does at 06:00 UTC)."""
    from storage import clock

    _show(_run(ENGAGEMENT, clock.now()), as_json)


@enqueue.command("hunt")
@click.argument("hunt_id", type=ID)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def hunt(hunt_id: int, as_json: bool) -> None:
    """Run one hunt now (its pacing limit and credits still hold)."""
    _show(_run(HUNT, hunt_id), as_json)


@enqueue.command("campaign")
@click.argument("campaign_id", type=ID)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def campaign(campaign_id: int, as_json: bool) -> None:
    """Run a campaign's due (or unfinished) batch now; never a batch ahead of time."""
    _show(_run(CAMPAIGN, campaign_id), as_json)


def register(group: click.Group) -> None:
    group.add_command(enqueue)
