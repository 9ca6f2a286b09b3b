"""Commands about senders: their pacing, pauses, and the sending hours of accounts."""

from __future__ import annotations

from typing import Any

import click

from producers.cli.context import ID, boot, print_json, print_table

# An operator's pause without --hours: as long as WAHA's 463 pause.
DEFAULT_PAUSE_HOURS = 24.0


@click.group()
def sender() -> None:
    """Senders (a WAHA session, an SMTP from-address, a webhook): spacing, caps, pauses."""


def _show(data: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print_json(data)
        return
    state = f"paused until {data['paused_until']}" if data["paused_until"] else "sending"
    click.echo(f"{what}: {data['name']} ({state}, {data['waiting']} waiting)")


@sender.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_command(as_json: bool) -> None:
    """Every sender: spacing, cap, next slot, sends today, pause and its reason."""
    boot()
    from storage.db import database
    from worker.sender_admin import list_senders

    with database.connection_context():
        rows = list_senders()
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no sender yet (one is made on its first send or `outreach sender set`)")
        return
    print_table(
        "Senders",
        ["name", "spacing s", "cap", "next slot", "sent today", "waiting", "paused until", "why"],
        [
            [
                r["name"],
                f"{r['min_spacing_seconds']:g}-{r['max_spacing_seconds']:g}",
                r["daily_cap"],
                r["next_slot_at"],
                r["sent_today"],
                r["waiting"],
                r["paused_until"],
                r["pause_reason"],
            ]
            for r in rows
        ],
    )


@sender.command("set")
@click.argument("name")
@click.option("--account", "account_id", type=ID, default=None, help="Its account's messages.")
@click.option("--min-spacing", type=float, default=None, help="Seconds between sends, at least.")
@click.option("--max-spacing", type=float, default=None, help="Seconds between sends, at most.")
@click.option("--daily-cap", type=int, default=None, help="Sends per day, at most.")
@click.option("--hours", "sending_hours", default=None, help='e.g. "mon-sat 09:00-20:00".')
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def set_command(
    name: str,
    account_id: int | None,
    min_spacing: float | None,
    max_spacing: float | None,
    daily_cap: int | None,
    sending_hours: str | None,
    as_json: bool,
) -> None:
    """Create or change sender NAME (<channel>:<identity>, e.g. whatsapp:default)."""
    boot()
    from storage import clock
    from storage.db import database
    from worker.accounts import require_account
    from worker.sender_admin import sender_summary
    from worker.senders import configure_sender

    with database.connection_context():
        if account_id is not None:
            require_account(account_id)
        row = configure_sender(
            name,
            account_id=account_id,
            min_spacing=min_spacing,
            max_spacing=max_spacing,
            daily_cap=daily_cap,
            sending_hours=sending_hours,
        )
        data = sender_summary(row, clock.now())
    _show(data, as_json, "set")


@sender.command("pause")
@click.argument("name")
@click.option(
    "--hours", "hours", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_PAUSE_HOURS
)
@click.option("--reason", default="paused by an operator", show_default=True, help="Why.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def pause_command(name: str, hours: float, reason: str, as_json: bool) -> None:
    """Stop sender NAME for a while; its messages wait, none fails."""
    boot()
    from storage.db import database
    from worker.sender_admin import pause_sender

    with database.connection_context():
        _require_sender(name)
        data = pause_sender(name, hours * 3600, reason)
    _show(data, as_json, "paused")


@sender.command("resume")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def resume_command(name: str, as_json: bool) -> None:
    """Lift sender NAME's pause: what waited goes out now, in its turns."""
    boot()
    from storage.db import database
    from worker.sender_admin import resume_sender

    with database.connection_context():
        _require_sender(name)
        data = resume_sender(name)
    _show(data, as_json, "resumed")


@sender.command("hours")
@click.argument("spec")
@click.option("--account", "account_id", type=ID, default=None, help="The account's hours.")
@click.option("--campaign", "campaign_id", type=ID, default=None, help="A campaign's own.")
def hours_command(spec: str, account_id: int | None, campaign_id: int | None) -> None:
    """Set the sending hours (SPEC like "mon-sat 09:00-20:00", "always", or "default")."""
    boot()
    from storage.db import database, write_transaction
    from storage.errors import InvalidInput, NotFound
    from storage.models import Account, Campaign
    from worker.hours import check_hours

    if (account_id is None) == (campaign_id is None):
        raise InvalidInput("give one of --account and --campaign")
    value = None if spec.strip().lower() == "default" else check_hours(spec)
    with database.connection_context(), write_transaction():
        if account_id is not None:
            changed = Account.update(sending_hours=value).where(Account.id == account_id).execute()
            what = f"account {account_id}"
        else:
            changed = (
                Campaign.update(sending_hours=value).where(Campaign.id == campaign_id).execute()
            )
            what = f"campaign {campaign_id}"
        if not changed:
            raise NotFound(f"{what} does not exist")
    click.echo(f"{what}: sending hours {value or 'default'}")


def _require_sender(name: str) -> None:
    from storage.errors import NotFound
    from storage.models import Sender

    if not Sender.select().where(Sender.name == name).exists():
        raise NotFound(f"sender {name!r} does not exist (see `outreach sender list`)")


def register(group: click.Group) -> None:
    group.add_command(sender)
