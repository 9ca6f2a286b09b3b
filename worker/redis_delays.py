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

# The sorted set of a queue's delayed message ids, and the hash of their bodies (the scripts
# below spell them out too).
DELAYED_SUFFIX = ".delayed"
BODIES_SUFFIX = ".delayed.msgs"
# Due messages moved onto a queue in one call at most (the rest move at the next fetch).
MOVE_AT_MOST = 1_000
# Delayed messages added in one script call at most, so that no call holds Redis for long.
ADD_AT_MOST = 500

# The keys are built in the scripts from the namespace, as Dramatiq's own scripts build theirs:
# a call then sends queue names, not four keys a queue (packing them cost more than the move).

# ARGV: the namespace, then (queue, message id, body, due time in ms) for each message.
_DELAY = """
local namespace = ARGV[1]
for i = 2, #ARGV, 4 do
    local key = namespace .. ":" .. ARGV[i]
    redis.call("hset", key .. ".delayed.msgs", ARGV[i + 1], ARGV[i + 2])
    redis.call("zadd", key .. ".delayed", ARGV[i + 3], ARGV[i + 1])
end
"""

# A process moves due messages at most this often (whichever of its consumers comes first):
# one script call for every queue, not one a fetch.
MOVE_EVERY_SECONDS = 0.05

# ARGV: the namespace, now (ms), how many a queue at most, then the queues.
_MOVE_DUE = """
local namespace, now, most = ARGV[1], ARGV[2], tonumber(ARGV[3])
local moved = 0
for q = 4, #ARGV do
    local queue = namespace .. ":" .. ARGV[q]
    local delayed, bodies = queue .. ".delayed", queue .. ".delayed.msgs"
    local ids = redis.call("zrangebyscore", delayed, "-inf", now, "LIMIT", 0, most)
    for _, id in ipairs(ids) do
        local body = redis.call("hget", bodies, id)
        redis.call("zrem", delayed, id)
        if body then
            redis.call("hdel", bodies, id)
            redis.call("hset", queue .. ".msgs", id, body)
            redis.call("rpush", queue, id)
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
        """(queue, Redis id, body, due time in ms) each: one round trip for all of them, a
        script call for each ADD_AT_MOST."""
        chunks = [delayed[i : i + ADD_AT_MOST] for i in range(0, len(delayed), ADD_AT_MOST)]
        pipe = self.client.pipeline(transaction=False) if len(chunks) > 1 else None
        for chunk in chunks:
            args = [self.namespace, *(part for one in chunk for part in one)]
            self._delay(args=args, client=pipe)
        if pipe is not None:
            pipe.execute()

    def move_due(self, queue_names: Iterable[str], now_ms: int) -> int:
        """Put each queue's due messages on it; how many there were."""
        names = list(queue_names)
        if not names:
            return 0
        return int(self._move_due(args=[self.namespace, now_ms, MOVE_AT_MOST, *names]))

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
