"""`outreach scheduler`: the long-running process that fires the periodic sweeps."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click

from producers.cli.context import boot

# Exit status when a second signal abandoned the fire in progress (128 + SIGINT, as shells do).
EXIT_INTERRUPTED = 130


@click.command("scheduler")
def scheduler_command() -> None:
    """Fire the periodic sweeps on time, each fire once (the Procfile's `scheduler`).

    SIGTERM or SIGINT stops it after the fire in progress; a second one abandons that fire,
    which the next start catches up.
    """
    boot()
    from producers.scheduler.loop import build_scheduler, log

    scheduler = build_scheduler()
    if scheduler.after_fire is not None:
        log.warning(
            "scheduler.embedded",
            detail="no REDIS_URL: the work runs in this process and fires are not shared; "
            "run one scheduler only",
        )

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if scheduler.stop_requested.is_set():
            raise KeyboardInterrupt
        log.info("scheduler.stopping", signal=signal.Signals(signum).name)
        scheduler.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.run_forever()
    except KeyboardInterrupt:
        click.echo("error: scheduler interrupted; the fire in progress was handed back", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(group: click.Group) -> None:
    group.add_command(scheduler_command)
