"""Embedded mode: with no ``REDIS_URL`` the broker is in-process, so whoever enqueues also works."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

# Worker threads for the in-process worker; SQLite serialises writers anyway.
EMBEDDED_WORKER_THREADS = 4


def drain(broker: dramatiq.Broker | None = None) -> None:
    """Process every message the in-process broker holds, delayed retries included.

    A no-op on a real broker: there, the worker processes do the work.
    """
    broker = broker or dramatiq.get_broker()
    if not isinstance(broker, StubBroker):
        return
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=EMBEDDED_WORKER_THREADS)
    worker.start()
    try:
        # Work on one queue can enqueue onto another (a sweep queues deliveries): until quiet.
        while any(queue.unfinished_tasks for queue in broker.queues.values()):
            for name in [n for n in broker.queues if not n.endswith(".DQ")]:
                broker.join(name, fail_fast=False)
        worker.join()
    finally:
        worker.stop()
