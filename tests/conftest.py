"""Fixtures: a clock, a database per backend, and brokers (in-process, fakeredis, real Redis).

Integration fixtures fail, never skip, when PostgreSQL or Redis cannot be reached: a green run
must mean the real services were exercised.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

# Before anything imports the project: embedded defaults, nothing from the caller's shell.
_SCRATCH = tempfile.mkdtemp(prefix="outreach-tests-")
os.environ["DATABASE_URL"] = f"sqlite:///{_SCRATCH}/import.sqlite3"
os.environ.pop("REDIS_URL", None)
os.environ.pop("OUTREACH_CLOCK", None)
os.environ.setdefault("OUTREACH_LOG_LEVEL", "WARNING")
# Pacing off unless a test turns it on (tests/pacing): the other suites send many messages from
# one sender within milliseconds, at any hour of their fake clocks. Worker processes started by
# tests inherit this.
os.environ.setdefault("OUTREACH_WHATSAPP_MIN_SPACING", "0")
os.environ.setdefault("OUTREACH_WHATSAPP_MAX_SPACING", "0")
os.environ.setdefault("OUTREACH_EMAIL_MIN_SPACING", "0")
os.environ.setdefault("OUTREACH_EMAIL_MAX_SPACING", "0")
os.environ.setdefault("OUTREACH_SENDING_HOURS", "always")

import dramatiq  # noqa: E402
import fakeredis  # noqa: E402
import peewee  # noqa: E402
import redis  # noqa: E402
import structlog  # noqa: E402
from dramatiq.brokers.redis import RedisBroker  # noqa: E402
from dramatiq.brokers.stub import StubBroker  # noqa: E402

import worker.actors  # noqa: E402, F401  (declares every actor)
from storage import clock as clock_module  # noqa: E402
from storage.clock import FrozenClock  # noqa: E402
from storage.db import close_all, database, init_database  # noqa: E402
from storage.migrate import migrate  # noqa: E402
from storage.models import ALL_MODELS  # noqa: E402
from storage.settings import get_settings  # noqa: E402
from worker.broker import add_project_middleware, use_broker  # noqa: E402
from worker.redis_broker import OutreachRedisBroker  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get(
    "OUTREACH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("OUTREACH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# A Monday morning, far from any daylight-saving change.
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# --- log lines --------------------------------------------------------------------------------

# A Python repr of a datetime in a log line means a value skipped the ISO 8601 rendering.
_DATETIME_REPR = "datetime.datetime("
_bad_log_lines: list[str] = []
_format_line = structlog.stdlib.ProcessorFormatter.format


def _checked_format(self: structlog.stdlib.ProcessorFormatter, record: object) -> str:
    line = _format_line(self, record)  # type: ignore[arg-type]
    if _DATETIME_REPR in line:
        _bad_log_lines.append(line)
    return line


# Every line any test writes through the project's log pipeline, JSON or console, goes by here.
structlog.stdlib.ProcessorFormatter.format = _checked_format  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def no_datetime_reprs_in_logs() -> Iterator[None]:
    """Fails the test during which a log line held a datetime's Python repr."""
    _bad_log_lines.clear()
    yield
    if _bad_log_lines:
        found = _bad_log_lines[:]
        _bad_log_lines.clear()
        pytest.fail(f"log line with a datetime repr: {found[0][:300]}", pytrace=False)


# --- clock and settings ----------------------------------------------------------------------


@pytest.fixture
def clock() -> Iterator[FrozenClock]:
    frozen = FrozenClock(T0)
    clock_module.set_clock(frozen)
    yield frozen
    clock_module.set_clock(None)


@pytest.fixture(autouse=True)
def fresh_pacing_reads() -> Iterator[None]:
    """Senders and accounts read by the delivery gate are read again in every test."""
    from worker import pacing

    pacing.forget()
    yield
    pacing.forget()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set environment variables for one test; settings are read again around it."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


# --- databases ---------------------------------------------------------------------------------


def _pg_url(name: str) -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _admin_execute(sql: str) -> None:
    admin = peewee.PostgresqlDatabase(None)
    from playhouse.db_url import parse

    params = parse(POSTGRES_ADMIN_URL)
    admin.init(params.pop("database"), **params)
    try:
        admin.connect()
    except peewee.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}", pytrace=False)
    admin.connection().autocommit = True
    try:
        admin.execute_sql(sql)
    finally:
        admin.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated once, dropped at the end."""
    name = f"outreach_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE DATABASE {name}")
    url = _pg_url(name)
    init_database(url)
    migrate()
    yield url
    close_all()
    database.initialize(None)
    _admin_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _use_sqlite(tmp_path: object) -> str:
    url = f"sqlite:///{tmp_path}/outreach.sqlite3"
    init_database(url)
    migrate()
    return url


def _use_postgres(url: str) -> str:
    init_database(url)
    tables = ", ".join(f'"{m._meta.table_name}"' for m in ALL_MODELS)
    with database.connection_context():
        database.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """The database, once on SQLite and once on PostgreSQL; yields its URL."""
    if request.param == "sqlite":
        url = _use_sqlite(tmp_path)
    else:
        url = _use_postgres(request.getfixturevalue("postgres_url"))
    with database.connection_context():
        yield url
    close_all()


@pytest.fixture
def sqlite_db(tmp_path: object) -> Iterator[str]:
    url = _use_sqlite(tmp_path)
    with database.connection_context():
        yield url
    close_all()


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[str]:
    url = _use_postgres(postgres_url)
    with database.connection_context():
        yield url
    close_all()


# --- brokers -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def stub_broker() -> Iterator[StubBroker]:
    """Every test starts on a fresh in-process broker; other broker fixtures replace it."""
    broker = add_project_middleware(StubBroker())
    broker.emit_after("process_boot")
    use_broker(broker)
    yield broker
    broker.flush_all()
    broker.close()


@pytest.fixture
def stub_worker(stub_broker: StubBroker) -> Iterator[dramatiq.Worker]:
    work = dramatiq.Worker(stub_broker, worker_timeout=50, worker_threads=4)
    work.start()
    yield work
    work.stop()


@pytest.fixture
def fakeredis_broker() -> Iterator[RedisBroker]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    broker = add_project_middleware(OutreachRedisBroker(client=client, namespace="outreach-test"))
    use_broker(broker)
    yield broker
    broker.close()


@pytest.fixture(params=["fakeredis", "redis"])
def any_redis_broker(request: pytest.FixtureRequest) -> RedisBroker:
    """The project's Redis broker, once on fakeredis and once on the real Redis."""
    broker: RedisBroker = request.getfixturevalue(f"{request.param}_broker")
    return broker


def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL}: {exc}", pytrace=False)
    return client


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A key prefix of this test's own on the real Redis, deleted afterwards."""
    client = redis_client()
    namespace = f"outreach-test-{uuid.uuid4().hex[:10]}"
    yield namespace
    for key in client.scan_iter(match=f"*{namespace}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_broker(redis_namespace: str) -> Iterator[RedisBroker]:
    broker = add_project_middleware(
        OutreachRedisBroker(url=REDIS_TEST_URL, namespace=redis_namespace)
    )
    use_broker(broker)
    yield broker
    broker.close()


@pytest.fixture
def live_services(postgres_url: str, redis_namespace: str, tmp_path) -> Iterator[dict[str, str]]:
    """Environment for real processes: the session's PostgreSQL database, Redis and a file clock.

    The test's own process uses the same database and a Redis broker on the same namespace.
    """
    from storage.clock import FileClock
    from tests.processes import service_env

    _use_postgres(postgres_url)
    clock_file = tmp_path / "clock.txt"
    file_clock = FileClock(clock_file)
    file_clock.set(T0)
    clock_module.set_clock(file_clock)
    broker = add_project_middleware(
        OutreachRedisBroker(url=REDIS_TEST_URL, namespace=redis_namespace)
    )
    use_broker(broker)
    yield service_env(
        postgres_url, REDIS_TEST_URL, redis_namespace, OUTREACH_CLOCK=f"file:{clock_file}"
    )
    clock_module.set_clock(None)
    broker.close()


# --- the fault suite's figures, with or without pytest-xdist's workers ---------------------------


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker process hands its scenarios' figures to the controller, which prints them."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        from dataclasses import asdict

        from tests.faults.figures import FIGURES

        workeroutput["fault_figures"] = [asdict(row) for row in FIGURES.rows]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    from tests.faults.figures import FIGURES, Figures

    for row in getattr(node, "workeroutput", {}).get("fault_figures", []):
        FIGURES.record(Figures(**row))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures of every fault scenario that ran, even under `pytest -q`."""
    from tests.faults.figures import FIGURES

    if not FIGURES.rows:
        return
    terminalreporter.write_sep("=", "fault suite figures")
    for line in FIGURES.lines():
        terminalreporter.write_line(line)
