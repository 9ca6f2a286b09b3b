"""The operator command line: ``outreach``.

Bad input is one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click
import peewee
import redis

from producers.cli.context import check_text
from storage.errors import OutreachError

# Exit status for a refused request (bad input, unknown id, wrong state).
EXIT_REFUSED = 2
# Exit status when a service (database, Redis) cannot be reached.
EXIT_UNAVAILABLE = 3
# Where the root group keeps the raw command line for `invoke` to check.
_RAW_ARGS = "outreach.raw_args"


class OutreachGroup(click.Group):
    """Turns the project's errors into one line and an exit status."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept to be checked in `invoke`, where a refusal becomes one line like any other.
        ctx.meta[_RAW_ARGS] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            for position, arg in enumerate(ctx.meta.get(_RAW_ARGS, ()), 1):
                # Bytes that are not UTF-8 arrive as lone surrogates, which no database stores.
                check_text(arg, f"command-line argument {position}")
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
        except OverflowError as exc:
            # A number no column can hold (SQLite's driver raises rather than find nothing).
            click.echo(f"error: a number is out of range: {exc}", err=True)
            sys.exit(EXIT_REFUSED)


@click.group(cls=OutreachGroup)
@click.version_option(package_name="outreach-worker")
def main() -> None:
    """Outreach worker: hunts, campaigns and engagement, sent on a schedule and never twice."""


from producers.cli import (  # noqa: E402
    accounts,
    api_tokens,
    campaigns,
    core,
    demo,
    dlq,
    engagement,
    enqueue,
    hunts,
    operators,
    outbox,
    scheduler,
    senders,
    status,
    suppress,
    web,
)

core.register(main)
demo.register(main)
outbox.register(main)
hunts.register(main)
engagement.register(main)
campaigns.register(main)
scheduler.register(main)
status.register(main)
dlq.register(main)
enqueue.register(main)
suppress.register(main)
accounts.register(main)
operators.register(main)
web.register(main)
api_tokens.register(main)
senders.register(main)
