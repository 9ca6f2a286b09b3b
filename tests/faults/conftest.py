"""Fixtures of the fault suite: each test gets its own database, Redis key prefix, receivers,
file clock and processes, and everything it started is stopped by pid when it ends.

Every scenario feeds :data:`tests.faults.figures.FIGURES`; the table is printed at the end of the
session, whatever the verbosity (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dramatiq.brokers.redis import RedisBroker

from storage import clock as clock_module
from storage.clock import FileClock
from storage.db import close_all, database, init_database
from storage.migrate import migrate
from tests.conftest import REDIS_TEST_URL, T0, _admin_execute, _pg_url, redis_client
from tests.faults.figures import FIGURES, FiguresReport
from tests.faults.procfile import Processes
from tests.faults.receivers import MailReceiver, WebhookReceiver
from tests.faults.services import FaultDatabase, PrivateRedis, TcpProxy, new_database_name
from tests.processes import service_env
from worker.broker import add_project_middleware, use_broker
from worker.redis_broker import OutreachRedisBroker

# Settings every process of a fault test runs with, unless the test says otherwise:
FAULT_SETTINGS = {
    # A killed worker's fetched messages come back after 5 s instead of a minute...
    "OUTREACH_BROKER_HEARTBEAT_TIMEOUT": "5",
    # ...looked for on one broker command in ten instead of one in a thousand.
    "OUTREACH_BROKER_MAINTENANCE_CHANCE": "0.1",
    # Generous: a busy machine must not turn a send into a timeout by itself.
    "OUTREACH_CHANNEL_TIMEOUT": "5",
    "SMTP_FROM": MailReceiver.sender,
    "OUTREACH_LOG_LEVEL": "INFO",
}


@pytest.fixture
def figures() -> FiguresReport:
    return FIGURES


@pytest.fixture
def fault_db() -> Iterator[FaultDatabase]:
    """A fresh PostgreSQL database for this test, migrated; this process is connected to it."""
    name = new_database_name()
    _admin_execute(f"CREATE DATABASE {name}")
    # Commits wait for no disk flush: what is under test is the workers, never the server's own
    # crash safety, and thousands of small commits on a shared machine would set the pace.
    _admin_execute(f"ALTER DATABASE {name} SET synchronous_commit TO off")
    url = _pg_url(name)
    init_database(url)
    migrate()
    try:
        yield FaultDatabase(name, url)
    finally:
        close_all()
        database.initialize(None)
        _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def file_clock(tmp_path: Path) -> Iterator[FileClock]:
    """One clock for this process and every process started with `fault_env` (T0 to begin)."""
    clock = FileClock(tmp_path / "clock.txt")
    clock.set(T0)
    clock_module.set_clock(clock)
    yield clock
    clock_module.set_clock(None)


@pytest.fixture
def shared_redis(redis_namespace: str) -> Iterator[tuple[str, str]]:
    """(URL, key prefix) on the machine's Redis; fails if it does not answer."""
    redis_client().close()
    yield REDIS_TEST_URL, redis_namespace


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own (it may be shut down); killed by pid at the end."""
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def use_redis_broker() -> Iterator[Callable[[str, str], RedisBroker]]:
    """Point this process's producers (sweeps, ticks) at a Redis broker: `use(url, prefix)`."""
    brokers: list[RedisBroker] = []

    def use(url: str, namespace: str) -> RedisBroker:
        broker = OutreachRedisBroker(url=url, namespace=namespace)
        add_project_middleware(broker)
        use_broker(broker)
        brokers.append(broker)
        return broker

    yield use
    for broker in brokers:
        broker.close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def mailbox() -> Iterator[MailReceiver]:
    receiver = MailReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def pg_proxy(fault_db: FaultDatabase) -> Iterator[TcpProxy]:
    """A cuttable TCP proxy in front of the shared PostgreSQL (which is never stopped)."""
    from playhouse.db_url import parse

    params = parse(fault_db.url)
    proxy = TcpProxy(params.get("host") or "127.0.0.1", int(params.get("port") or 5432)).start()
    yield proxy
    proxy.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Starts workers and schedulers; every one still running is killed at the end."""
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def fault_env(
    file_clock: FileClock, webhook: WebhookReceiver, mailbox: MailReceiver
) -> Callable[..., dict[str, str]]:
    """The environment of a process under test: `fault_env(database_url, redis_url, prefix,
    **overrides)`, with the receivers, the file clock and the fault settings."""

    def build(database_url: str, redis_url: str, namespace: str, **extra: str) -> dict[str, str]:
        settings = {
            **FAULT_SETTINGS,
            "OUTREACH_CLOCK": f"file:{file_clock.path}",
            "WEBHOOK_URL": webhook.url,
            "SMTP_URL": mailbox.url,
            **extra,
        }
        return service_env(database_url, redis_url, namespace, **settings)

    return build
