"""The database: one proxy that every model binds to, opened from ``DATABASE_URL``.

Connections are pooled: dramatiq runs many threads and peewee keeps one connection per
thread, so a message borrows a connection and gives it back when it ends.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import urlparse

from peewee import Database, DatabaseProxy, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from storage.errors import ConfigurationError

# SQLite: a writer waits up to 10 s for the lock (set first: switching to WAL needs the lock
# too); readers never block the writer; foreign keys enforced.
SQLITE_PRAGMAS = {"busy_timeout": 10_000, "journal_mode": "wal", "foreign_keys": 1}
# Enough connections for several dramatiq threads plus the scheduler's own.
POOL_MAX_CONNECTIONS = 32
# Pooled connections idle longer than this are closed rather than reused.
POOL_STALE_SECONDS = 300

database = DatabaseProxy()


def open_database(url: str) -> Database:
    """A pooled peewee database for a ``sqlite:///`` or ``postgresql://`` URL."""
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if not path or path == ":memory:":
            # One in-memory database per connection: each worker thread would see an empty one.
            raise ConfigurationError("DATABASE_URL: SQLite needs a file path, not :memory:")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return PooledSqliteDatabase(
            path,
            pragmas=SQLITE_PRAGMAS,
            max_connections=POOL_MAX_CONNECTIONS,
            stale_timeout=POOL_STALE_SECONDS,
            check_same_thread=False,
        )
    if scheme in {"postgres", "postgresql"}:
        params = parse(url)
        name = params.pop("database")
        return PooledPostgresqlDatabase(
            name,
            max_connections=POOL_MAX_CONNECTIONS,
            stale_timeout=POOL_STALE_SECONDS,
            **params,
        )
    raise ConfigurationError(
        f"DATABASE_URL: unsupported scheme {scheme!r} (use sqlite:///PATH or postgresql://...)"
    )


def init_database(url: str | None = None) -> Database:
    """Point the proxy at the configured database (idempotent for the same URL)."""
    from storage.settings import get_settings

    url = url or get_settings().database_url
    current = database.obj
    if current is not None and getattr(current, "_outreach_url", None) == url:
        return current
    if current is not None:
        close_all(current)
    db = open_database(url)
    db._outreach_url = url  # type: ignore[attr-defined]
    database.initialize(db)
    return db


def close_all(db: Database | None = None) -> None:
    db = db or database.obj
    if db is None:
        return
    if not db.is_closed() and not db.in_transaction():
        db.close()
    close_idle = getattr(db, "close_all", None)
    if close_idle is not None:
        close_idle()


def is_postgres() -> bool:
    return isinstance(database.obj, PostgresqlDatabase)


def is_sqlite() -> bool:
    return isinstance(database.obj, SqliteDatabase)


def write_transaction() -> AbstractContextManager[object]:
    """A transaction that will write.

    SQLite takes the write lock up front (BEGIN IMMEDIATE): a deferred transaction that
    upgrades to a writer after another commit fails at once instead of waiting.
    """
    if is_sqlite() and not database.in_transaction():
        return database.atomic("IMMEDIATE")
    return database.atomic()


def release_connection() -> None:
    """Give this thread's connection back, rolling back anything an interrupted message left open.

    Dramatiq's time limit and shutdown inject exceptions anywhere, so a transaction may still be
    open here; peewee refuses to close a connection with one open.
    """
    db = database.obj
    if db is None or db.is_closed():
        return
    if db.in_transaction():
        db._state.transactions.clear()
        db._state.commit_callbacks.clear()
        try:
            db.rollback()
        except Exception:
            # The connection itself is broken: drop it rather than return it to the pool.
            db.manual_close()
            return
    db.close()
