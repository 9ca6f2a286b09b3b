"""Bulk enqueue writes what the broker's own enqueue writes, and a worker consumes it once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from worker import enqueue
from worker.enqueue import enqueue_calls, enqueue_many


def _name() -> str:
    # Actors are carried from broker to broker between tests: each gets a name of its own.
    return f"bulk_{uuid.uuid4().hex[:8]}"


def _consume(broker: RedisBroker, queues: tuple[str, ...]) -> None:
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=4)
    worker.start()
    try:
        for queue in queues:
            broker.join(queue, timeout=60_000)
        worker.join()
    finally:
        worker.stop()


def test_messages_enqueued_in_bulk_are_consumed_exactly_once(any_redis_broker, monkeypatch):
    # Given two actors on two queues, and chunks small enough that the run takes several
    broker = any_redis_broker
    monkeypatch.setattr(enqueue, "PIPELINE_CHUNK", 300)
    seen: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    @dramatiq.actor(actor_name=_name(), queue_name="bulk_a", max_retries=0)
    def first(i: int) -> None:
        with lock:
            seen["a", i] += 1

    @dramatiq.actor(actor_name=_name(), queue_name="bulk_b", max_retries=0)
    def second(i: int) -> None:
        with lock:
            seen["b", i] += 1

    # When 2,000 messages, interleaved between the queues, are enqueued in bulk
    messages = [(first if i % 2 else second).message(i) for i in range(2000)]
    count = enqueue_many(messages)
    # And a real worker drains both queues
    _consume(broker, ("bulk_a", "bulk_b"))
    # Then every message ran once, and nothing is left behind: no body, no id, no claim
    assert count == 2000
    assert seen == Counter({("a" if i % 2 else "b", i): 1 for i in range(2000)})
    client = broker.client
    for queue in ("bulk_a", "bulk_b"):
        assert client.llen(f"{broker.namespace}:{queue}") == 0
        assert client.hlen(f"{broker.namespace}:{queue}.msgs") == 0
        assert not list(client.scan_iter(match=f"{broker.namespace}:__acks__.*.{queue}"))


def test_a_bulk_enqueue_writes_what_the_dispatch_script_writes(any_redis_broker):
    # Given a message enqueued the broker's own way, and three in bulk
    broker = any_redis_broker

    @dramatiq.actor(actor_name=_name(), queue_name="bulk_c", max_retries=0)
    def noted(i: int) -> None:
        return None

    single = broker.enqueue(noted.message(-1))
    enqueue_many(noted.message(i) for i in range(3))
    client = broker.client
    # Then the queue holds the ids in order, each with its body under the same id, as the
    # script's enqueue leaves them
    ids = [i.decode() for i in client.lrange(f"{broker.namespace}:bulk_c", 0, -1)]
    bodies = client.hmget(f"{broker.namespace}:bulk_c.msgs", ids)
    decoded = [dramatiq.Message.decode(body) for body in bodies]
    assert [m.args[0] for m in decoded] == [-1, 0, 1, 2]
    assert [m.options["redis_message_id"] for m in decoded] == ids
    assert ids[0] == single.options["redis_message_id"] and len(set(ids)) == 4
    # And the producer's heartbeat is recorded, as every dispatch call records it
    assert client.zscore(f"{broker.namespace}:__heartbeats__", broker.broker_id) is not None


def test_the_same_message_enqueued_twice_in_bulk_runs_twice(any_redis_broker):
    # Given one message object enqueued twice (a redelivery, a sweep run twice)
    broker = any_redis_broker
    runs: list[int] = []

    @dramatiq.actor(actor_name=_name(), queue_name="bulk_d", max_retries=0)
    def counted(i: int) -> None:
        runs.append(i)

    message = counted.message(7)
    enqueue_many([message, message])
    # Then each enqueue has its own Redis id, so neither overwrites the other
    _consume(broker, ("bulk_d",))
    assert runs == [7, 7]


class _Seen(Middleware):
    def __init__(self) -> None:
        self.before: list[str] = []
        self.after: list[str] = []

    def before_enqueue(self, broker, message, delay):  # type: ignore[no-untyped-def]
        self.before.append(message.options["redis_message_id"])

    def after_enqueue(self, broker, message, delay):  # type: ignore[no-untyped-def]
        self.after.append(message.options["redis_message_id"])


def test_enqueue_hooks_see_each_message_with_its_redis_id(fakeredis_broker):
    # Given a middleware with enqueue hooks
    seen = _Seen()
    fakeredis_broker.add_middleware(seen)

    @dramatiq.actor(actor_name=_name(), queue_name="bulk_e", max_retries=0)
    def hooked(i: int) -> None:
        return None

    # When messages are enqueued in bulk
    enqueue_many(hooked.message(i) for i in range(5))
    # Then each hook saw every message once, with the id it is stored under, a version-4 UUID
    ids = [i.decode() for i in fakeredis_broker.client.lrange("outreach-test:bulk_e", 0, -1)]
    assert seen.before == ids and seen.after == ids
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids)


def test_calls_enqueued_in_bulk_are_consumed_exactly_once(any_redis_broker, monkeypatch):
    # Given an actor, and chunks small enough that the run takes several
    broker = any_redis_broker
    monkeypatch.setattr(enqueue, "PIPELINE_CHUNK", 400)
    seen: Counter[tuple[int, str]] = Counter()
    lock = threading.Lock()

    @dramatiq.actor(actor_name=_name(), queue_name="bulk_f", max_retries=0)
    def called(i: int, word: str) -> None:
        with lock:
            seen[i, word] += 1

    # When 1,500 calls are enqueued in bulk from their arguments
    count = enqueue_calls(called, ((i, f"w{i}") for i in range(1500)))
    # And a real worker drains the queue
    _consume(broker, ("bulk_f",))
    # Then every call ran once, and nothing is left behind
    assert count == 1500
    assert seen == Counter({(i, f"w{i}"): 1 for i in range(1500)})
    assert broker.client.hlen(f"{broker.namespace}:bulk_f.msgs") == 0
    assert not list(broker.client.scan_iter(match=f"{broker.namespace}:__acks__.*.bulk_f"))


def test_a_call_enqueued_in_bulk_is_the_message_the_actor_would_make(any_redis_broker):
    # Given an actor
    broker = any_redis_broker

    @dramatiq.actor(actor_name=_name(), queue_name="bulk_g", max_retries=0)
    def called(run_id: int, user_id: int, check: str) -> None:
        return None

    # When one call is enqueued from its arguments
    enqueue_calls(called, [(1, 2, "inactivity_14d")])
    [redis_id] = broker.client.lrange(f"{broker.namespace}:bulk_g", 0, -1)
    body = broker.client.hget(f"{broker.namespace}:bulk_g.msgs", redis_id)
    stored = dramatiq.Message.decode(body)
    # Then it is the actor's own message, with a Redis id of its own, as broker.enqueue writes it
    made = broker.enqueue(called.message(1, 2, "inactivity_14d"))
    assert stored.options == {"redis_message_id": redis_id.decode()}
    assert set(stored.asdict()) == set(made.asdict())
    for field in ("queue_name", "actor_name", "args", "kwargs"):
        assert getattr(stored, field) == getattr(made, field)
    assert uuid.UUID(stored.message_id).version == 4 and stored.message_id != redis_id.decode()
    assert abs(stored.message_timestamp - made.message_timestamp) < 60_000
