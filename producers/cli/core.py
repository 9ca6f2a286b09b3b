"""Commands about the installation itself: migrate, settings."""

from __future__ import annotations

import os

import click

from producers.cli.context import print_json, print_table
from storage.settings import Settings


@click.command()
def migrate() -> None:
    """Apply pending schema migrations (safe to run twice, and from two processes at once)."""
    from storage.db import init_database
    from storage.migrate import migrate as apply

    init_database()
    applied = apply()
    if applied:
        for name in applied:
            click.echo(f"applied: {name}")
    else:
        click.echo("database is up to date")


@click.command("settings")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def show_settings(as_json: bool) -> None:
    """Every environment variable the system reads, its default, and whether it is set here.

    The environment is checked first: a malformed value is refused in one line.
    """
    Settings.from_env()
    # Values are not printed: URLs and keys may hold passwords.
    rows = [(name, default, name in os.environ) for name, default in Settings.documented()]
    if as_json:
        print_json({name: {"default": default, "set": is_set} for name, default, is_set in rows})
    else:
        table = [[name, default, "yes" if is_set else ""] for name, default, is_set in rows]
        print_table("Settings", ["variable", "default", "set here"], table)


def register(group: click.Group) -> None:
    group.add_command(migrate)
    group.add_command(show_settings)
