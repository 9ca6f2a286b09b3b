"""Commands about hunts and the ads they match: create, run, sweep, status; import ads."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from producers.cli.context import (
    EXIT_ROWS_REJECTED,
    ID,
    boot,
    check_text,
    past_fire_time,
    print_json,
    print_table,
)
from storage.errors import InvalidInput


def _read_json(path: Path) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InvalidInput(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError:  # the only other refusal: an integer of thousands of digits
        raise InvalidInput(f"{path}: not valid JSON (a number is too long)") from None
    check_text(data, str(path))
    return data


@click.group()
def hunt() -> None:
    """Hunts: contact the owners of new ads matching criteria, within daily caps."""


@hunt.command("create")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the new hunt as JSON.")
def create(file: Path, as_json: bool) -> None:
    """Create a hunt from a JSON definition (see docs/operating.md for its format)."""
    boot()
    from storage.db import database
    from worker.hunts.definition import create_hunt

    data = _read_json(file)
    with database.connection_context():
        created = create_hunt(data)
    if as_json:
        print_json({"id": created.id, "name": created.name, "status": created.status})
    else:
        click.echo(f"hunt {created.id} created: {created.name} ({created.status})")


def _print_run(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
    else:
        click.echo(" ".join(f"{key}={value}" for key, value in result.items()))


@hunt.command("run")
@click.argument("hunt_id", type=ID)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def run(hunt_id: int, as_json: bool) -> None:
    """Enqueue one hunt now (pacing and credits still hold)."""
    boot()
    from producers.embedded import drain
    from producers.hunts import enqueue_hunt

    result = enqueue_hunt(hunt_id)
    drain()
    _print_run(result, as_json)


@hunt.command("sweep")
@click.option(
    "--at", "fire_time", default=None, help="Fire time (ISO date-time, UTC if naive); now if unset."
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def sweep_command(fire_time: str | None, as_json: bool) -> None:
    """Enqueue today's run of every active auto-refresh hunt (once a day per hunt)."""
    boot()
    from producers.embedded import drain
    from producers.hunts import sweep

    result = sweep(past_fire_time(fire_time, "hunts never run ahead of time"))
    drain()
    _print_run(result, as_json)


def _set_status(hunt_id: int, status: str) -> None:
    boot()
    from storage.db import database
    from worker.hunts.definition import set_status

    with database.connection_context():
        changed = set_status(hunt_id, status)
    click.echo(f"hunt {changed.id}: {changed.status}")


@hunt.command("pause")
@click.argument("hunt_id", type=ID)
def pause(hunt_id: int) -> None:
    """Stop a hunt from running (the sweep skips it) until resumed."""
    _set_status(hunt_id, "paused")


@hunt.command("resume")
@click.argument("hunt_id", type=ID)
def resume(hunt_id: int) -> None:
    """Make a paused hunt active again."""
    _set_status(hunt_id, "active")


@hunt.command("status")
@click.argument("hunt_id", type=ID)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(hunt_id: int, as_json: bool) -> None:
    """Today's contacts against the limit, credits, leads by stage, last scan."""
    boot()
    from storage.db import database
    from worker.hunts.status import hunt_status

    with database.connection_context():
        data = hunt_status(hunt_id)
    if as_json:
        print_json(data)
        return
    today = data["today"]
    limit = "no limit" if today["limit"] is None else today["limit"]
    click.echo(f"hunt {data['id']}: {data['name']} ({data['status']})")
    click.echo(f"today ({today['day']}): {today['contacted']} contacted, limit {limit}")
    click.echo(f"last scan: {data['last_scan_at'] or 'never'}")
    if data["last_run"] and data["last_run"]["error"]:
        click.echo(f"last run ({data['last_run']['day']}) failed: {data['last_run']['error']}")
    print_table(
        "Credits",
        ["channel", "allocated", "reserved", "consumed", "available"],
        [
            [name, c["allocated"], c["reserved"], c["consumed"], c["available"]]
            for name, c in data["credits"].items()
        ],
    )
    print_table("Leads", ["stage", "leads"], [[k, v] for k, v in data["leads"].items()])


@click.group()
def ads() -> None:
    """Classified ads imported from the scraper."""


@ads.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--strict", is_flag=True, help="Import nothing if any line is invalid.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_ads(file: Path, strict: bool, as_json: bool) -> None:
    """Upsert ads from a JSON Lines file; invalid lines are reported by number and skipped.

    Exit status 1 when some lines were skipped.
    """
    boot()
    from storage.db import database
    from worker.hunts.importing import import_file

    with database.connection_context():
        report = import_file(file, strict=strict)
    if as_json:
        print_json(report.as_dict())
    else:
        for line in report.errors:
            click.echo(line, err=True)
        hidden = report.invalid - len(report.errors)
        if hidden:
            click.echo(f"... and {hidden} more invalid lines", err=True)
        click.echo(f"{report.written} ads imported, {report.invalid} invalid lines skipped")
    if report.invalid:
        # As `contacts import`: a script sees that some lines were left out.
        sys.exit(EXIT_ROWS_REJECTED)


def register(group: click.Group) -> None:
    group.add_command(hunt)
    group.add_command(ads)
