"""Commands about campaigns and their contacts.

``outreach campaign create|run|pause|resume|cancel|status|tick`` and
``outreach contacts import LIST_NAME FILE.csv``.
"""

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
        raise InvalidInput(f"cannot read {path.name}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path.name}: not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    except RecursionError:
        raise InvalidInput(f"{path.name}: not valid JSON (nested too deeply)") from None
    except ValueError:  # the only other refusal: an integer of thousands of digits
        raise InvalidInput(f"{path.name}: not valid JSON (a number is too long)") from None
    check_text(data, path.name)
    return data


def _minute(iso: str | None) -> str | None:
    """2026-03-02T09:00:00.123+00:00 -> 2026-03-02 09:00 (times are UTC)."""
    return iso[:16].replace("T", " ") if iso else None


def _summary(campaign_id: int, as_json: bool) -> None:
    from storage.db import database
    from worker.campaigns.progress import campaign_status

    with database.connection_context():
        report = campaign_status(campaign_id)
    if as_json:
        print_json(report)
        return
    click.echo(
        f"campaign {report['id']} ({report['name']}): {report['status']}; "
        f"sent {report['sent']}, failed {report['failed']}, remaining {report['remaining']}; "
        f"next batch {report['next_batch_at'] or '-'}"
    )
    if report["last_error"]:
        click.echo(f"last error: {report['last_error']}")
    if report["batches"]:
        print_table(
            "Batches",
            ["batch", "scheduled (UTC)", "started", "finished", "taken", "sent", "failed", "left"],
            [
                [
                    b["number"],
                    _minute(b["scheduled_at"]),
                    _minute(b["started_at"]),
                    _minute(b["finished_at"]),
                    b["selected"],
                    b["sent"],
                    b["failed"],
                    b["remaining"],
                ]
                for b in report["batches"]
            ],
        )


@click.group()
def campaign() -> None:
    """Campaigns: a template to a contact list, a batch a day until everyone is done."""


@campaign.command("create")
@click.option(
    "--file",
    "spec_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A JSON file with the campaign's fields (instead of the options).",
)
@click.option("--owner", "owner_id", type=ID, help="Id of the user who owns the campaign.")
@click.option("--name", help="The campaign's name.")
@click.option("--list", "contact_list", help="Name of the contact list.")
@click.option("--channel", help="log, email, whatsapp or webhook.")
@click.option("--template", help="Template text; {Name} becomes the contact's first name.")
@click.option("--template-id", type=ID, help="An existing template of the owner, instead.")
@click.option("--media-url", help="URL or storage path of media sent with each message.")
@click.option("--media-type", help="MIME type of the media, e.g. image/jpeg.")
@click.option("--media-id", type=ID, help="An existing media item of the owner, instead.")
@click.option(
    "--limit",
    "daily_send_limit",
    type=int,
    default=None,
    help="Messages per daily batch (default 5).",
)
@click.option(
    "--default-name",
    "default_name_value",
    default=None,
    help="Used for {Name} when a contact has no first name (default 'there').",
)
@click.option("--start-at", help="Schedule the first batch (ISO time, UTC if no offset).")
@click.option("--json", "as_json", is_flag=True, help="Print the new campaign as JSON.")
def create(spec_file: Path | None, as_json: bool, **options: Any) -> None:
    """Create a campaign (a draft, or scheduled with --start-at), from options or a JSON file."""
    boot()
    from storage.db import database
    from worker.campaigns.create import CampaignSpec, create_campaign

    given = {k: v for k, v in options.items() if v is not None}
    if spec_file is not None:
        if given:
            raise InvalidInput("give either --file or the options, not both")
        data = _read_json(spec_file)
    else:
        data = given
    spec = CampaignSpec.from_mapping(data)
    with database.connection_context():
        created = create_campaign(spec)
    if as_json:
        print_json({"id": created.id, "name": created.name, "status": created.status})
    else:
        click.echo(f"campaign {created.id} created: {created.name} ({created.status})")


@campaign.command("run")
@click.argument("campaign_id", type=ID)
@click.option("--as-user", "user_id", type=ID, required=True, help="The owner's user id.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def run(campaign_id: int, user_id: int, as_json: bool) -> None:
    """Start a draft or scheduled campaign now: its first batch goes right away."""
    boot()
    from producers.campaigns import enqueue_if_due
    from producers.embedded import drain
    from storage.db import database
    from worker.campaigns.control import run_manually

    with database.connection_context():
        run_manually(campaign_id, user_id)
    enqueue_if_due(campaign_id)
    drain()
    _summary(campaign_id, as_json)


@campaign.command("pause")
@click.argument("campaign_id", type=ID)
@click.option("--as-user", "user_id", type=ID, default=None, help="Act as this user (owner).")
def pause(campaign_id: int, user_id: int | None) -> None:
    """Stop further batches until resumed (messages already queued still go)."""
    boot()
    from storage.db import database
    from worker.campaigns.control import pause as pause_campaign

    with database.connection_context():
        changed = pause_campaign(campaign_id, user_id)
    click.echo(f"campaign {changed.id}: {changed.status}")


@campaign.command("resume")
@click.argument("campaign_id", type=ID)
@click.option("--as-user", "user_id", type=ID, default=None, help="Act as this user (owner).")
def resume(campaign_id: int, user_id: int | None) -> None:
    """Carry on from where the campaign stopped; a batch that came due meanwhile goes now."""
    boot()
    from producers.campaigns import enqueue_if_due
    from producers.embedded import drain
    from storage.db import database
    from worker.campaigns.control import resume as resume_campaign

    with database.connection_context():
        changed = resume_campaign(campaign_id, user_id)
    enqueue_if_due(campaign_id)
    drain()
    _summary(changed.id, as_json=False)


@campaign.command("cancel")
@click.argument("campaign_id", type=ID)
@click.option("--as-user", "user_id", type=ID, default=None, help="Act as this user (owner).")
def cancel(campaign_id: int, user_id: int | None) -> None:
    """End the campaign: no further batch (messages already queued still go)."""
    boot()
    from storage.db import database
    from worker.campaigns.control import cancel as cancel_campaign

    with database.connection_context():
        changed = cancel_campaign(campaign_id, user_id)
    click.echo(f"campaign {changed.id}: {changed.status}")


@campaign.command("status")
@click.argument("campaign_id", type=ID)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(campaign_id: int, as_json: bool) -> None:
    """Status, sent/failed/remaining, batch history and the next batch's time."""
    boot()
    _summary(campaign_id, as_json)


@campaign.command("tick")
@click.option(
    "--at", "fire_time", default=None, help="Fire time (ISO, UTC if no offset; not in the future)."
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def tick_command(fire_time: str | None, as_json: bool) -> None:
    """Enqueue every campaign batch that is due (what the scheduler does every few minutes)."""
    boot()
    from producers.campaigns import tick
    from producers.embedded import drain

    result = tick(past_fire_time(fire_time, "batches never run ahead of time"))
    drain()
    if as_json:
        print_json(result)
    else:
        click.echo(" ".join(f"{key}={value}" for key, value in result.items()))


@click.group()
def contacts() -> None:
    """Contact lists."""


@contacts.command("import")
@click.argument("list_name")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_command(list_name: str, file: Path, as_json: bool) -> None:
    """Add a CSV file's contacts to a list (made if new); bad rows are listed and skipped.

    The header row names the columns: phone, email, first_name (phone or email needed).
    Exit status 1 when some rows were skipped.
    """
    boot()
    from storage.db import database
    from worker.campaigns.contacts import import_contacts

    with database.connection_context():
        report = import_contacts(list_name, file)
    if as_json:
        print_json(
            {
                "list": report.list_name,
                "list_id": report.list_id,
                "imported": report.imported,
                "rejected": [{"line": b.line, "reason": b.reason} for b in report.bad_rows],
            }
        )
    else:
        click.echo(
            f"list {report.list_name!r} ({report.list_id}): {report.imported} imported, "
            f"{len(report.bad_rows)} rejected"
        )
        for bad in report.bad_rows:
            click.echo(f"line {bad.line}: {bad.reason}", err=True)
    if report.bad_rows:
        sys.exit(EXIT_ROWS_REJECTED)


def register(group: click.Group) -> None:
    group.add_command(campaign)
    group.add_command(contacts)
