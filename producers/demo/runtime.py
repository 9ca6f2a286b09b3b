"""The demo's own little world: its settings, database, broker, logs and clock, put back after.

The demo must run on nothing but Python whatever the user's shell says: every setting the
system reads from the environment is taken away for the demo's run (a `REDIS_URL` or a
`DATABASE_URL` would otherwise send it to real services), then the demo's own are set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import dramatiq
from dramatiq.brokers.stub import StubBroker

from storage import clock as clock_module
from storage.clock import FrozenClock
from storage.settings import Settings, get_settings

# Settings a user's shell most often has that would take the demo away from its embedded world.
SERVICE_VARIABLES = ("REDIS_URL", "DATABASE_URL")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    broker: StubBroker
    clock: FrozenClock
    database_path: Path
    log_path: Path
    # The service settings of the caller's environment that the demo ignores.
    ignored: tuple[str, ...]


def _demo_environment(database_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{database_path}",
        # Every send goes to the log channel, whatever channel a message asks for.
        "OUTREACH_FORCE_LOG_CHANNEL": "true",
        "OUTREACH_ENGAGEMENT_CHANNEL": "log",
        # Pacing off: the in-process worker's delays run on the wall clock, not the demo's.
        "OUTREACH_SENDING_HOURS": "always",
        "OUTREACH_WHATSAPP_MIN_SPACING": "0",
        "OUTREACH_WHATSAPP_MAX_SPACING": "0",
        "OUTREACH_EMAIL_MIN_SPACING": "0",
        "OUTREACH_EMAIL_MAX_SPACING": "0",
        "OUTREACH_LOG_LEVEL": "INFO",
    }


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[tuple[str, ...]]:
    """Only `values` among the settings' variables; yields the service variables it hid."""
    names = [f.metadata["env"] for f in fields(Settings)]
    saved = {name: os.environ[name] for name in names if name in os.environ}
    ignored = tuple(name for name in SERVICE_VARIABLES if os.environ.get(name))
    for name in names:
        os.environ.pop(name, None)
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield ignored
    finally:
        for name in names:
            os.environ.pop(name, None)
        os.environ.update(saved)
        get_settings.cache_clear()


@contextmanager
def _logs_to(path: Path, level: str) -> Iterator[None]:
    """Every JSON log line (the worker's, the scheduler's, the log channel's) into `path`."""
    from worker.logging import configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    with path.open("a", encoding="utf-8") as stream:
        configure_logging(level, stream)
        try:
            yield
        finally:
            for handler in root.handlers:
                handler.flush()
            root.handlers = saved_handlers
            root.setLevel(saved_level)


@contextmanager
def embedded_runtime(database_path: Path, log_path: Path, start: datetime) -> Iterator[Runtime]:
    """Settings, a fresh in-process broker, the SQLite database and a fake clock at `start`.

    Whatever the process used before (broker, database, clock, log handlers) is put back at
    the end, so calling the demo in a process that does other things leaves them as they were.
    """
    previous_clock = clock_module.get_clock()
    with _environment(_demo_environment(database_path)) as ignored:
        settings = get_settings()
        # Declares every actor (on a broker built from the demo's settings if first imported);
        # before the logs are pointed at the file, as the first import sets up logging too.
        import worker.actors  # noqa: F401

        with _logs_to(log_path, settings.log_level):
            from storage.db import close_all, database, init_database
            from worker.broker import add_project_middleware, use_broker

            previous_broker = dramatiq.get_broker()
            previous_database = database.obj
            broker = StubBroker()
            add_project_middleware(broker)
            broker.emit_after("process_boot")
            use_broker(broker)
            init_database(settings.database_url)
            fake_clock = FrozenClock(start)
            clock_module.set_clock(fake_clock)
            try:
                yield Runtime(settings, broker, fake_clock, database_path, log_path, tuple(ignored))
            finally:
                clock_module.set_clock(previous_clock)
                # Closing every connection lets SQLite fold its WAL back into the file.
                close_all()
                database.initialize(previous_database)
                use_broker(previous_broker)
                broker.close()
