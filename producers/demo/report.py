"""Printing the demo: where things are, what each day did, and a summary table."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

# The engagement schedule's and the hunts schedule's default wall times (see the scheduler).
ENGAGEMENT_AT = "06:00 UTC"
HUNTS_AT = "08:00 Paris"


def _when(iso: str) -> str:
    moment = datetime.fromisoformat(iso)
    return f"{moment:%a %d %b %H:%M} UTC"


def print_start(setup: dict[str, Any], console: Console) -> None:
    data = setup["sample_data"]
    users = sum(data["engagement_users"].values())
    console.print("[bold]Outreach demo[/bold]: four simulated days on the embedded default")
    console.print(f"  database  {setup['database']} (a new SQLite file, migrated)")
    console.print("  broker    in-process, with its worker in this process (no Redis)")
    console.print("  channel   log: every message is a JSON line, nothing leaves the machine")
    console.print(f"  logs      {setup['log_file']} (the worker's and the scheduler's JSON lines)")
    if setup["ignored_environment"]:
        names = " and ".join(setup["ignored_environment"])
        console.print(f"  note      {names} from your environment are ignored by the demo")
    console.print(
        f"  sample    {data['accounts']} accounts, {data['ads']} ads, {data['hunts']} hunts, "
        f"a campaign of {data['campaign_contacts']} contacts, {users} members in every "
        "engagement state"
    )
    console.print(
        "The scheduler fires the real schedules on a simulated clock "
        f"({_when(setup['simulated_from'])} to {_when(setup['simulated_to'])}).",
    )


def _transitions(transitions: dict[str, int]) -> str:
    parts = [f"{key.split(' (')[0].replace(' -> ', ' → ')} {n}" for key, n in transitions.items()]
    return ", ".join(parts) if parts else "no transition"


def _hunt_line(hunt: dict[str, Any], width: int) -> str:
    limit = "no limit" if hunt["limit"] is None else f"of {hunt['limit']}"
    channels = ", ".join(f"{name} {n}" for name, n in hunt["by_channel"].items())
    detail = f" ({channels})" if channels else ""
    return (
        f"    {hunt['name']:<{width}} {hunt['contacted']:>2} {limit:<8} "
        f"{hunt['stopped_by']}{detail}"
    )


def print_day(day: dict[str, Any], console: Console) -> None:
    date = datetime.fromisoformat(day["date"])
    console.print()
    console.print(f"[bold]Day {day['day']}[/bold], {date:%A %d %B %Y}")
    fires = ", ".join(f"{name} {n}" for name, n in day["fires"].items())
    console.print(f"  fires        {fires}")
    for failed in day["failed_fires"]:
        console.print(
            f"  [red]failed[/red]       {failed['schedule']} at {failed['fire_time']}: "
            f"{failed['error']}",
        )
    engagement = day["engagement"]
    console.print(
        f"  engagement   {ENGAGEMENT_AT}: {engagement['goodbyes_sent']} goodbye(s) sent, "
        f"{engagement['skipped_opted_out']} opted-out member(s) skipped"
    )
    console.print(f"               {_transitions(engagement['transitions'])}")
    console.print(f"  hunts        {HUNTS_AT}: ads contacted, against the daily limit")
    width = max(len(hunt["name"]) for hunt in day["hunts"])
    for hunt in day["hunts"]:
        console.print(_hunt_line(hunt, width), markup=False)
    campaign = day["campaign"]
    for batch in campaign["batches"]:
        console.print(
            f"  campaign     batch {batch['number']} at {datetime.fromisoformat(batch['at']):%H:%M}"
            f": {batch['size']} queued, {batch['sent']} sent "
            f"({campaign['sent_so_far']} of the list so far, {batch['remaining']} left)",
        )
    if campaign["completed_at"]:
        console.print(
            f"  campaign     [green]completed[/green] at "
            f"{datetime.fromisoformat(campaign['completed_at']):%H:%M}",
        )
    elif not campaign["batches"]:
        console.print(f"  campaign     no batch due ({campaign['status']})")
    for reply in day.get("replies", ()):
        console.print(
            f"  reply        {reply['who']} wrote {reply['text']!r}: {reply['outcome']}",
            markup=False,
        )


def print_paced(paced: dict[str, Any], console: Console) -> None:
    """The paced batch in three lines: who, when queued, and each send's local time."""
    zone = ZoneInfo(paced["timezone"])
    queued = datetime.fromisoformat(paced["queued_at"]).astimezone(zone)
    sent = [datetime.fromisoformat(at).astimezone(zone) for at in paced["sent_at"]]
    low, high = paced["spacing_seconds"]
    console.print()
    console.print(f"[bold]Paced WhatsApp batch[/bold], {queued:%A %d %B %Y} ({paced['timezone']})")
    console.print(
        f"  sender       {paced['sender']}, {low:g}-{high:g} s apart, hours "
        f"{paced['sending_hours']}; {len(sent)} messages queued at {queued:%H:%M:%S}",
        markup=False,
    )
    times = [f"{sent[0]:%H:%M:%S}"] + [
        f"{when:%H:%M:%S} (+{gap:g} s)"
        for when, gap in zip(sent[1:], paced["gaps_seconds"], strict=True)
    ]
    console.print(f"  sent at      {', '.join(times)}", markup=False)


def _summary_table(result: dict[str, Any]) -> Table:
    days = result["days"]
    summary = result["summary"]
    table = Table(title="Summary", title_justify="left")
    table.add_column("what")
    for day in days:
        table.add_column(f"day {day['day']}", justify="right")
    table.add_column("total", justify="right")

    def row(label: str, values: list[int]) -> None:
        table.add_row(label, *(str(v) for v in values), str(sum(values)))

    row(
        f"campaign batch (limit {summary['campaign']['daily_send_limit']})",
        [sum(b["size"] for b in day["campaign"]["batches"]) for day in days],
    )
    for hunt in summary["hunts"]:
        limit = "no limit" if hunt["limit"] is None else f"limit {hunt['limit']}"
        row(f"hunt {hunt['hunt_id']} contacts ({limit})", hunt["contacted_by_day"])
    row("goodbyes sent", [day["engagement"]["goodbyes_sent"] for day in days])
    keys = summary["engagement"]["transitions"]
    for key in keys:
        row(key.split(" (")[0].replace(" -> ", " → "), [
            day["engagement"]["transitions"].get(key, 0) for day in days
        ])  # fmt: skip
    row("skipped (opted out)", [day["engagement"]["skipped_opted_out"] for day in days])
    row("messages sent", [sum(day["messages_queued"].values()) for day in days])
    return table


def print_summary(result: dict[str, Any], console: Console) -> None:
    summary = result["summary"]
    campaign = summary["campaign"]
    outbox = summary["outbox"]
    console.print()
    console.print(_summary_table(result))
    sizes = ", ".join(str(size) for size in campaign["batch_sizes"])
    console.print(
        f"campaign  {campaign['name']!r}: batches {sizes}, {campaign['sent']} of "
        f"{campaign['contacts']} sent, {campaign['status']}",
    )
    sources = ", ".join(f"{k} {v}" for k, v in outbox["by_source"].items())
    console.print(
        f"outbox    {outbox['total']} messages ({sources}), "
        f"{outbox['by_status'].get('sent', 0)} sent, each once: {outbox['duplicate_keys']} "
        f"duplicate key(s), {summary['ads_contacted_twice']} ad(s) contacted twice",
    )
    states = ", ".join(f"{k} {v}" for k, v in summary["engagement"]["states"].items())
    console.print(f"members   now {states}")
    consent = summary["consent"]
    console.print(
        f"consent   {consent['inbound_events']} replies heard, "
        f"{consent['suppressed_addresses']} address(es) suppressed, "
        f"{consent['stop_confirmations']} stop confirmation(s) sent",
    )
    console.print(f"took      {result['wall_seconds']:.1f} s")
    console.print()
    database = result["database"]
    console.print(f"Look inside: {database}", markup=False)
    console.print(
        f'  sqlite3 {database} "SELECT number, selected, started_at FROM campaign_batch"',
        markup=False,
    )
    console.print(
        f'  sqlite3 {database} "SELECT source, status, count(*) FROM outbox_message '
        'GROUP BY source, status"',
        markup=False,
    )
    console.print(
        f"Every message the log channel sent is a message.sent line in {result['log_file']}",
        markup=False,
    )
