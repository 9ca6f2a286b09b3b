"""Enqueue many messages at once: one Redis round trip per chunk instead of one per message.

Dramatiq has no bulk enqueue. On Redis a chunk is written as the broker's dispatch script
(`dramatiq/brokers/redis/dispatch.lua`) writes one message that is not delayed, in one
MULTI/EXEC: the producer's heartbeat (`ZADD __heartbeats__`, which the script does on every
call), then for each queue of the chunk one `HSET <queue>.msgs` of every body under its Redis id
and one `RPUSH <queue>` of the ids in order. Each message gets its own `redis_message_id` and
goes through the same middleware hooks as ``broker.enqueue`` (when no middleware has an enqueue
hook, as in this project, the body is written without the message's copy the hooks would see).
No queue maintenance is run, as the script's enqueue runs none when the producer's dice say
no. A worker cannot fetch an id whose body is not written yet: the transaction applies all of it
or nothing.

Running the script once per message cost Redis a script call, the heartbeat and a queue-name
split per message; the whole chunk now costs it a few commands. On any other broker this falls
back to ``broker.enqueue`` one by one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from itertools import islice
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis
from dramatiq.middleware import Middleware, MiddlewareError
from redis.typing import EncodableT, FieldT

# Messages per transaction: large enough to amortise the round trip, small enough to stay flat.
PIPELINE_CHUNK = 1000


def enqueue_many(
    messages: Iterable[dramatiq.Message], broker: dramatiq.Broker | None = None
) -> int:
    """Enqueue every message (none delayed); returns how many."""
    broker = broker or dramatiq.get_broker()
    if not isinstance(broker, RedisBroker):
        count = 0
        for message in messages:
            broker.enqueue(message)
            count += 1
        return count
    count = 0
    iterator = iter(messages)
    while chunk := list(islice(iterator, PIPELINE_CHUNK)):
        _enqueue_chunk(broker, chunk)
        count += len(chunk)
    return count


def enqueue_calls(
    actor: dramatiq.Actor[..., Any],
    calls: Iterable[tuple[Any, ...]],
    broker: dramatiq.Broker | None = None,
) -> int:
    """``enqueue_many(actor.message(*args) for args in calls)``, without making the messages.

    On Redis with no enqueue hook, each body is written straight from its arguments, with the
    same fields and values as the message's (its message id a fresh UUID, its timestamp now):
    building a Message, only to turn it into a dictionary and JSON, was a third of a sweep's
    CPU. Anywhere else the messages are made and go through :func:`enqueue_many`.
    """
    broker = broker or dramatiq.get_broker()
    if (
        not isinstance(broker, RedisBroker)
        or _hooks(broker, "before_enqueue")
        or _hooks(broker, "after_enqueue")
    ):
        return enqueue_many((actor.message(*args) for args in calls), broker)
    encoder = dramatiq.get_encoder()
    queue, name = actor.queue_name, actor.actor_name
    count = 0
    iterator = iter(calls)
    while chunk := list(islice(iterator, PIPELINE_CHUNK)):
        ids = _redis_ids(2 * len(chunk))
        now = current_millis()
        bodies: dict[FieldT, EncodableT] = {}
        for number, args in enumerate(chunk):
            redis_id = ids[2 * number]
            bodies[redis_id] = encoder.encode(
                {
                    "queue_name": queue,
                    "actor_name": name,
                    "args": tuple(args),
                    "kwargs": {},
                    "options": {"redis_message_id": redis_id},
                    "message_id": ids[2 * number + 1],
                    "message_timestamp": now,
                }
            )
        _write(broker, {queue: bodies})
        count += len(chunk)
    return count


def _hooks(broker: dramatiq.Broker, signal: str) -> list[Middleware]:
    """The broker's middleware that do something on `signal` (most do nothing on enqueue)."""
    base = getattr(Middleware, signal)
    return [m for m in broker.middleware if getattr(type(m), signal, base) is not base]


def _redis_ids(count: int) -> list[str]:
    """`count` random version-4 UUIDs as strings, as ``str(uuid4())`` makes them.

    Made from one read of the system's random source: ``uuid4()`` one by one cost a sweep more
    than encoding its messages did.
    """
    ids = []
    raw = os.urandom(16 * count).hex()
    for start in range(0, 32 * count, 32):
        h = raw[start : start + 32]
        variant = _VARIANT[h[16]]
        ids.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}")
    return ids


# RFC 4122 variant bits (10xx) on the first hex digit of the fourth group.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
# The fields of a message's body, as Message.asdict writes them.
_FIELDS = tuple(field.name for field in dataclasses.fields(dramatiq.Message))


def _enqueue_chunk(broker: RedisBroker, chunk: list[dramatiq.Message]) -> None:
    before = _hooks(broker, "before_enqueue")
    after = _hooks(broker, "after_enqueue")
    encoder = dramatiq.get_encoder()
    bodies: dict[str, dict[FieldT, EncodableT]] = {}
    prepared = []
    # As RedisBroker.enqueue: each enqueue gets an id of its own in Redis (a retried message
    # keeps its message id), carried in the body the consumer acks it by.
    for original, redis_id in zip(chunk, _redis_ids(len(chunk)), strict=True):
        queue = original.queue_name
        if before or after:
            message = original.copy(options={"redis_message_id": redis_id})
            for middleware in before:
                _emit(broker, middleware, "before_enqueue", message)
            body = message.encode()
            prepared.append(message)
        else:
            # No hook would see the message: its body is written without making the copy.
            data = {name: getattr(original, name) for name in _FIELDS}
            data["options"] = {**original.options, "redis_message_id": redis_id}
            body = encoder.encode(data)
        bodies.setdefault(queue, {})[redis_id] = body
    _write(broker, bodies)
    for message in prepared:
        for middleware in reversed(after):
            _emit(broker, middleware, "after_enqueue", message)


def _write(broker: RedisBroker, bodies: dict[str, dict[FieldT, EncodableT]]) -> None:
    """One transaction: the producer's heartbeat, then per queue its bodies and its ids in the
    order given (a dict keeps its insertion order)."""
    namespace = broker.namespace
    pipeline = broker.client.pipeline(transaction=True)
    pipeline.zadd(f"{namespace}:__heartbeats__", {broker.broker_id: current_millis()})
    for queue, queue_bodies in bodies.items():
        pipeline.hset(f"{namespace}:{queue}.msgs", mapping=queue_bodies)
        pipeline.rpush(f"{namespace}:{queue}", *queue_bodies)
    pipeline.execute()


def _emit(broker: dramatiq.Broker, middleware: Middleware, signal: str, message: Any) -> None:
    """One middleware's hook, failing as Broker.emit_before and emit_after fail."""
    try:
        getattr(middleware, signal)(broker, message, None)
    except MiddlewareError:
        raise
    except Exception:
        broker.logger.critical("Unexpected failure in %s of %r.", signal, middleware, exc_info=True)
