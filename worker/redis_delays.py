"""Delayed messages kept in Redis until they are due, not in a worker's memory.

Dramatiq's Redis broker puts a delayed message on its queue's delay queue (``<queue>.DQ``): a
worker fetches it at once, holds it in memory until its time, then enqueues it on the queue and
acks it. That is three more round trips, and a body decoded and encoded again, for every delayed
message (every paced send is one), with thousands of them held by each worker.

Here a delayed message's body waits in the hash ``<queue>.delayed.msgs`` and its id in the sorted
set ``<queue>.delayed``, scored by its due time. The consumers of the queue move what is due
onto the queue before they fetch (one script call for every queue, at most every
MOVE_EVERY_SECONDS in a process), after which it is an ordinary message of
its queue. What is not kept: a Redis restart loses delayed messages as it loses delay queues
(the relay enqueues their rows again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from dramatiq.common import current_millis

# The sorted set of a queue's delayed message ids, and the hash of their bodies.
DELAYED_SUFFIX = ".delayed"
BODIES_SUFFIX = ".delayed.msgs"
# Due messages moved onto a queue in one call at most (the rest move at the next fetch).
MOVE_AT_MOST = 1_000

# KEYS: the sorted set, the bodies. ARGV: the message's id, its body, when it is due (ms).
_DELAY = """
redis.call("hset", KEYS[2], ARGV[1], ARGV[2])
redis.call("zadd", KEYS[1], ARGV[3], ARGV[1])
"""

# A process moves due messages at most this often (whichever of its consumers comes first):
# one script call for every queue, not one a fetch.
MOVE_EVERY_SECONDS = 0.01

# KEYS: for each queue, its sorted set, its delayed bodies, the queue, the queue's bodies.
# ARGV: now (ms), how many a queue at most.
_MOVE_DUE = """
local moved = 0
for q = 1, #KEYS, 4 do
    local ids = redis.call(
        "zrangebyscore", KEYS[q], "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
    for _, id in ipairs(ids) do
        local body = redis.call("hget", KEYS[q + 1], id)
        redis.call("zrem", KEYS[q], id)
        if body then
            redis.call("hdel", KEYS[q + 1], id)
            redis.call("hset", KEYS[q + 3], id, body)
            redis.call("rpush", KEYS[q + 2], id)
            moved = moved + 1
        end
    end
end
return moved
"""


class Delays:
    """A broker's delayed messages (its Redis client and namespace)."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._delay = client.register_script(_DELAY)
        self._move_due = client.register_script(_MOVE_DUE)
        self._moved_at = 0.0
        self._moving = threading.Lock()

    def keys(self, queue_name: str) -> tuple[str, str]:
        """The sorted set and the bodies of `queue_name`'s delayed messages."""
        key = f"{self.namespace}:{queue_name}"
        return key + DELAYED_SUFFIX, key + BODIES_SUFFIX

    def add(self, queue_name: str, redis_id: str, body: bytes, due_ms: int) -> None:
        self.add_many([(queue_name, redis_id, body, due_ms)])

    def add_many(self, delayed: Sequence[tuple[str, str, bytes, int]]) -> None:
        """(queue, Redis id, body, due time in ms) each: one round trip for all of them."""
        if len(delayed) == 1:
            queue_name, redis_id, body, due_ms = delayed[0]
            self._delay(keys=list(self.keys(queue_name)), args=[redis_id, body, due_ms])
            return
        pipe = self.client.pipeline(transaction=False)
        for queue_name, redis_id, body, due_ms in delayed:
            self._delay(
                keys=list(self.keys(queue_name)), args=[redis_id, body, due_ms], client=pipe
            )
        pipe.execute()

    def move_due(self, queue_names: Iterable[str], now_ms: int) -> int:
        """Put each queue's due messages on it; how many there were."""
        keys = []
        for name in queue_names:
            queue = f"{self.namespace}:{name}"
            keys += [*self.keys(name), queue, queue + ".msgs"]
        if not keys:
            return 0
        return int(self._move_due(keys=keys, args=[now_ms, MOVE_AT_MOST]))

    def move_due_now_and_then(self, queue_names: Callable[[], Iterable[str]]) -> None:
        """move_due, unless this process did within MOVE_EVERY_SECONDS or is doing it now."""
        now = time.monotonic()
        if now - self._moved_at < MOVE_EVERY_SECONDS or not self._moving.acquire(blocking=False):
            return
        try:
            self._moved_at = now
            self.move_due(queue_names(), current_millis())
        finally:
            self._moving.release()

    def count(self, queue_name: str) -> int:
        """How many of the queue's messages wait for their time."""
        return int(self.client.zcard(self.keys(queue_name)[0]))

    def forget(self, queue_name: str) -> None:
        """Drop the queue's delayed messages (a flush of the queue)."""
        self.client.delete(*self.keys(queue_name))
