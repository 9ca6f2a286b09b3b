"""Broker set-up: Redis when ``REDIS_URL`` is set, an in-process broker otherwise.

Importing :mod:`worker.actors` calls :func:`setup` first, so the stock ``dramatiq`` runner and
every producer get the same broker, middleware and logging.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import MAINTENANCE_SCALE
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import q_name

from storage.db import init_database
from storage.errors import ConfigurationError
from storage.settings import Settings, get_settings
from worker.delivery_queue import DELIVER_GROUP_ACTOR, declare_lanes
from worker.logging import configure_logging
from worker.middleware import DatabaseConnection, LogContext, RetryBackoff
from worker.redis_broker import OutreachRedisBroker

_configured: dramatiq.Broker | None = None


def add_project_middleware(broker: dramatiq.Broker) -> dramatiq.Broker:
    broker.add_middleware(DatabaseConnection())
    broker.add_middleware(LogContext())
    return broker


def _milliseconds(seconds: float | None, name: str) -> int | None:
    if seconds is None:
        return None
    if seconds <= 0:
        raise ConfigurationError(f"{name}: must be more than 0 seconds")
    return int(seconds * 1000)


def build_broker(settings: Settings) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if settings.redis_url:
        heartbeat = _milliseconds(
            settings.broker_heartbeat_timeout, "OUTREACH_BROKER_HEARTBEAT_TIMEOUT"
        )
        chance = settings.broker_maintenance_chance
        if not 0 <= chance <= 1:
            raise ConfigurationError("OUTREACH_BROKER_MAINTENANCE_CHANCE: must be between 0 and 1")
        broker = OutreachRedisBroker(
            url=settings.redis_url,
            namespace=settings.redis_namespace,
            heartbeat_timeout=heartbeat,
            maintenance_chance=int(chance * MAINTENANCE_SCALE),
        )
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    add_project_middleware(broker)
    if settings.worker_metrics and settings.redis_url:
        # Only with Redis: the embedded broker's in-process worker is not a worker fleet.
        from worker.middleware.prometheus import WorkerPrometheus

        broker.add_middleware(WorkerPrometheus())
    min_backoff = _milliseconds(settings.retry_min_backoff, "OUTREACH_RETRY_MIN_BACKOFF")
    max_backoff = _milliseconds(settings.retry_max_backoff, "OUTREACH_RETRY_MAX_BACKOFF")
    if min_backoff is not None or max_backoff is not None:
        broker.add_middleware(RetryBackoff(min_backoff, max_backoff))
    return broker


def setup(settings: Settings | None = None) -> dramatiq.Broker:
    """Configure logging, the database and the broker once per process."""
    global _configured
    if _configured is None:
        settings = settings or get_settings()
        configure_logging(settings.log_level, log_format=settings.log_format)
        init_database(settings.database_url)
        _configured = build_broker(settings)
        dramatiq.set_broker(_configured)
    return _configured


def use_broker(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Move every declared actor and queue (the delivery lanes) to another broker (tests,
    embedded mode)."""
    global _configured
    current = dramatiq.get_broker()
    for name in current.get_declared_actors():
        actor = current.get_actor(name)
        actor.broker = broker
        broker.declare_actor(actor)
    for queue in sorted(current.get_declared_queues()):
        if q_name(queue) == queue:  # not a delayed queue: declaring the queue declares that
            broker.declare_queue(queue)
    if DELIVER_GROUP_ACTOR in broker.get_declared_actors():
        declare_lanes(broker)  # and how the broker moves delayed deliveries
    dramatiq.set_broker(broker)
    _configured = broker
    return broker


def is_embedded() -> bool:
    return isinstance(dramatiq.get_broker(), StubBroker)
