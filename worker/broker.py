"""Broker set-up: Redis when ``REDIS_URL`` is set, an in-process broker otherwise.

Importing :mod:`worker.actors` calls :func:`setup` first, so the stock ``dramatiq`` runner and
every producer get the same broker, middleware and logging.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from storage.db import init_database
from storage.settings import Settings, get_settings
from worker.logging import configure_logging
from worker.middleware import DatabaseConnection, LogContext

_configured: dramatiq.Broker | None = None


def add_project_middleware(broker: dramatiq.Broker) -> dramatiq.Broker:
    broker.add_middleware(DatabaseConnection())
    broker.add_middleware(LogContext())
    return broker


def build_broker(settings: Settings) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if settings.redis_url:
        broker = RedisBroker(url=settings.redis_url, namespace=settings.redis_namespace)
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    return add_project_middleware(broker)


def setup(settings: Settings | None = None) -> dramatiq.Broker:
    """Configure logging, the database and the broker once per process."""
    global _configured
    if _configured is None:
        settings = settings or get_settings()
        configure_logging(settings.log_level)
        init_database(settings.database_url)
        _configured = build_broker(settings)
        dramatiq.set_broker(_configured)
    return _configured


def use_broker(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Move every declared actor to another broker (tests, embedded mode)."""
    global _configured
    current = dramatiq.get_broker()
    for name in current.get_declared_actors():
        actor = current.get_actor(name)
        actor.broker = broker
        broker.declare_actor(actor)
    dramatiq.set_broker(broker)
    _configured = broker
    return broker


def is_embedded() -> bool:
    return isinstance(dramatiq.get_broker(), StubBroker)
