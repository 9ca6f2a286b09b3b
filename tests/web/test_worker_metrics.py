"""The workers' Prometheus middleware: only when asked for, only on Redis, inert until boot."""

from __future__ import annotations

import dramatiq

from storage.settings import Settings
from worker.broker import build_broker
from worker.middleware.prometheus import WorkerPrometheus

REDIS = "redis://127.0.0.1:6379/0"


def has_metrics(broker: dramatiq.Broker) -> bool:
    return any(isinstance(m, WorkerPrometheus) for m in broker.middleware)


def test_the_middleware_is_added_only_when_asked_for_on_redis():
    assert has_metrics(build_broker(Settings(redis_url=REDIS, worker_metrics=True)))
    assert not has_metrics(build_broker(Settings(redis_url=REDIS)))
    # Embedded mode keeps its in-process worker free of it, whatever the setting
    assert not has_metrics(build_broker(Settings(worker_metrics=True)))


def test_a_process_that_only_enqueues_is_not_disturbed_by_it():
    # Given the middleware in a process that never booted as a worker (web, scheduler, CLI)
    middleware = WorkerPrometheus()
    message = dramatiq.Message(
        queue_name="hunt", actor_name="process_hunt", args=(1,), kwargs={}, options={"retries": 1}
    )
    # Then its hooks do nothing (dramatiq's own would fail: its counters are made at boot)
    middleware.after_enqueue(None, message, 0)
    middleware.after_nack(None, message)
    middleware.after_process_message(None, message)
    assert middleware.booted is False


def test_the_setting_is_read_from_the_environment():
    assert Settings.from_env({"OUTREACH_WORKER_METRICS": "1"}).worker_metrics is True
    assert Settings.from_env({}).worker_metrics is False
