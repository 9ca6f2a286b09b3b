"""`outreach web`: the process for what comes back in (the Procfile's `web`)."""

from __future__ import annotations

import os

import click

from producers.cli.context import boot

# The port when neither --port nor $PORT says otherwise (as the Procfile's default).
DEFAULT_PORT = 8000


def _default_port() -> int:
    raw = os.environ.get("PORT", "")
    return int(raw) if raw.isdigit() else DEFAULT_PORT


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=_default_port,
    help=f"Port to listen on (default: $PORT, else {DEFAULT_PORT}).",
)
def web_command(host: str, port: int) -> None:
    """Serve WAHA's webhook, the unsubscribe links and the health checks with uvicorn.

    Every event is verified, stored once and handed to a worker; with no REDIS_URL this
    process also runs the worker that handles them.
    """
    boot()
    import uvicorn

    from producers.web.app import create_app

    # uvicorn's own logging config is skipped: its lines go through the project's JSON logs.
    uvicorn.run(create_app(), host=host, port=port, log_config=None, access_log=False)


def register(group: click.Group) -> None:
    group.add_command(web_command)
