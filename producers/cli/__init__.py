"""The operator command line: ``outreach``.

Bad input is one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import peewee
import redis

from storage.errors import OutreachError

# Exit status for a refused request (bad input, unknown id, wrong state).
EXIT_REFUSED = 2
# Exit status when a service (database, Redis) cannot be reached.
EXIT_UNAVAILABLE = 3


class OutreachGroup(click.Group):
    """Turns the project's errors into one line and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OutreachError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_REFUSED)
        except click.UsageError as exc:
            if isinstance(exc, click.exceptions.NoArgsIsHelpError):
                raise  # a group run without a command shows its help
            # A malformed command line is bad input too: one line, same exit status as click's.
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"error: {exc.format_message()}{where}", err=True)
            sys.exit(EXIT_REFUSED)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(f"error: database unavailable: {first}", err=True)
            sys.exit(EXIT_UNAVAILABLE)
        except redis.exceptions.ConnectionError as exc:
            click.echo(f"error: Redis unavailable: {exc}", err=True)
            sys.exit(EXIT_UNAVAILABLE)


@click.group(cls=OutreachGroup)
@click.version_option(package_name="outreach-worker")
def main() -> None:
    """Outreach worker: hunts, campaigns and engagement, sent on a schedule and never twice."""


from producers.cli import (  # noqa: E402
    campaigns,
    core,
    dlq,
    engagement,
    enqueue,
    hunts,
    outbox,
    scheduler,
    status,
)

core.register(main)
outbox.register(main)
hunts.register(main)
engagement.register(main)
campaigns.register(main)
scheduler.register(main)
status.register(main)
dlq.register(main)
enqueue.register(main)
