"""The delivery queues of the in-process broker: the default one and every account's lane."""

from __future__ import annotations

from dramatiq import Message
from dramatiq.brokers.stub import StubBroker

from worker.delivery_queue import DELIVERY_QUEUES


def delivery_messages(broker: StubBroker) -> list[Message]:
    """Every delivery message waiting (not delayed), the default queue's first, then by lane."""
    return [
        Message.decode(body)
        for name in DELIVERY_QUEUES
        if name in broker.queues
        for body in broker.queues[name].queue
    ]


def join_deliveries(broker: StubBroker) -> None:
    """Wait until every delivery queue is worked off (a delivery can enqueue onto its lane)."""
    while any(broker.queues[name].unfinished_tasks for name in DELIVERY_QUEUES):
        for name in DELIVERY_QUEUES:
            broker.join(name, fail_fast=False)
