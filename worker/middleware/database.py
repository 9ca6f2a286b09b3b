"""A database connection per message, given back to the pool when the message ends."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from dramatiq import Middleware
from peewee import OperationalError

from storage.db import database, release_connection


class DatabaseConnection(Middleware):
    """Peewee connections are per thread; dramatiq runs many threads.

    The connection is opened lazily by the first query and released after every outcome,
    including a skipped message and an interrupted one (time limit, shutdown).
    """

    def before_process_message(self, broker: Any, message: Any) -> None:
        if database.obj is not None:
            # The database away: the actor's first query fails the same way and the message is
            # retried. Raised here, Dramatiq would only log it (critical, with a traceback) and
            # run the actor anyway: every message of an outage logged twice.
            with suppress(OperationalError):
                database.connect(reuse_if_open=True)

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        release_connection()

    def after_skip_message(self, broker: Any, message: Any) -> None:
        release_connection()

    def after_worker_thread_boot(self, broker: Any, thread: Any) -> None:
        release_connection()

    def before_worker_thread_shutdown(self, broker: Any, thread: Any) -> None:
        release_connection()
