"""The database: one proxy that every model binds to, opened from ``DATABASE_URL``.

Connections are pooled: dramatiq runs many threads and peewee keeps one connection per
thread, so a message borrows a connection and gives it back when it ends.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
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
# A PostgreSQL connection given back less than this long ago is reused without a ping.
POOL_PING_AFTER_IDLE_SECONDS = 1.0

database = DatabaseProxy()


class PingWhenIdlePostgresqlDatabase(PooledPostgresqlDatabase):
    """The pool, without a round trip per check-out for a connection that was just in use.

    peewee's pool checks each PostgreSQL connection with `SELECT 1` as it hands it out, and a
    worker borrows one per message: one more round trip for every message. A connection given
    back moments ago (with no transaction open: that state is known locally) is handed out as
    it is; one idle for longer is pinged as before. Should the server have dropped it all the
    same, the message's first statement fails, the message is retried, and the broken
    connection is closed when it is given back.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._returned_at: dict[Any, float] = {}

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        with self._pool_lock:
            if close_conn:
                self._returned_at.pop(self.conn_key(conn), None)
            else:
                self._returned_at[self.conn_key(conn)] = time.monotonic()
            super()._close(conn, close_conn)

    def _is_closed(self, conn: Any) -> bool:
        returned_at = self._returned_at.pop(self.conn_key(conn), None)
        if (
            returned_at is not None
            and time.monotonic() - returned_at < POOL_PING_AFTER_IDLE_SECONDS
            and not conn.closed
            and self._adapter.txn_status(conn) == self._adapter.txn_idle
        ):
            return False
        closed: bool = super()._is_closed(conn)
        return closed


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
        return PingWhenIdlePostgresqlDatabase(
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
