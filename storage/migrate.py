"""Schema migrations with peewee's own runner, safe when two processes migrate at once."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from peewee import Database
from playhouse.migrations import Runner

from storage.db import database, is_postgres

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed 64-bit number; every process that migrates this schema takes the same one.
ADVISORY_LOCK_KEY = 0x0_7E4C_0001


@contextmanager
def migration_lock(db: Database) -> Iterator[None]:
    """One migrating process at a time: an advisory lock on PostgreSQL, a file lock on SQLite."""
    if is_postgres():
        db.execute_sql("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            yield
        finally:
            db.execute_sql("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
        return
    lock_path = Path(str(db.database) + ".migrate.lock")
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def runner() -> Runner:
    return Runner(database.obj, str(MIGRATIONS_DIR))


def migrate() -> list[str]:
    """Apply pending migrations; returns the names applied (none when up to date)."""
    db = database.obj
    with db.connection_context(), migration_lock(db):
        return list(runner().up())


def pending() -> list[str]:
    with database.obj.connection_context():
        return [m.name for m in runner().status() if not m.applied]
