"""Dramatiq's Redis broker, with delayed messages kept in Redis until due (worker.redis_delays),
an idle consumer woken when its process moves due messages onto its queue (instead of sleeping
out Dramatiq's polling backoff), and two changes to how messages are dead-lettered.

- A body that cannot be read goes to the dead-letter queue. Dramatiq's consumer raises on a body
  that does not decode (bytes pushed into a queue by hand, a body written by something else): its
  thread restarts, and that body and every message fetched with it stay claimed by the worker
  until the worker dies, when they come back and wedge the next one. Here the unreadable body is
  dead-lettered at once, with an error in the log, and the messages fetched with it are processed
  as usual (design invariants 2 and 3).
- A dead message keeps why it died. Dramatiq dead-letters the body as last enqueued, which holds
  no reason for a message refused at once (an unknown id, an unknown actor) and the reason of the
  failure before the last for one whose retries ran out; `outreach dlq list` shows this one.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, current_millis, dq_name
from dramatiq.errors import ConnectionClosed, DecodeError

from worker.logging import get_logger
from worker.redis_delays import Delays

log = get_logger("outreach.broker")


class _Consumer(_RedisConsumer):
    def __next__(self) -> Any:
        while True:
            if not self.message_cache:
                self._move_due()
                if not self._fetch():
                    return self._idle()
            try:
                return super().__next__()
            except DecodeError as exc:
                # The rest of the fetched messages are still in the cache: carry on with them.
                self._dead_letter(exc)

    def _fetch(self) -> bool:
        """Dramatiq's prefetch: up to what this consumer may hold; whether any came."""
        if self.outstanding_message_count < self.prefetch:
            try:
                wanted = self.prefetch - self.outstanding_message_count
                self.message_cache = self.broker.do_fetch(self.queue_name, wanted)
            except redis.ConnectionError as error:
                raise ConnectionClosed(error) from None
        return bool(self.message_cache)

    def _idle(self) -> None:
        """Dramatiq's polling backoff, cut short when this process moves due messages onto
        the queue: a delayed delivery is fetched as it comes due, not up to a backoff later."""
        self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
        filled = self.broker.delays.filled(self.queue_name)
        if filled.wait(backoff_ms / 1000):
            filled.clear()
            self.misses = 0

    def _move_due(self) -> None:
        """Before a fetch: the delayed messages that are due, onto their queues."""
        try:
            self.broker.delays.move_due_now_and_then(self.broker.queues_waited_on)
        except redis.ConnectionError as error:
            raise ConnectionClosed(error) from None

    def _dead_letter(self, exc: DecodeError) -> None:
        """Find the body among the messages this worker just fetched, and nack it."""
        broker = self.broker
        claimed = f"{broker.namespace}:__acks__.{broker.broker_id}.{self.queue_name}"
        bodies = f"{broker.namespace}:{self.queue_name}.msgs"
        try:
            ids = sorted(broker.client.smembers(claimed))
            found = broker.client.hmget(bodies, ids) if ids else []
            for redis_id, body in zip(ids, found, strict=True):
                if body == exc.data:
                    broker.do_nack(self.queue_name, redis_id)
                    log.error(
                        "broker.unreadable_message",
                        queue=self.queue_name,
                        redis_message_id=redis_id.decode(),
                        error=f"{type(exc.error).__name__}: {exc.error}"[:300],
                        outcome="dead-lettered",
                    )
                    return
        except redis.ConnectionError as error:
            raise ConnectionClosed(error) from None
        log.error("broker.unreadable_message", queue=self.queue_name, outcome="not found")

    def nack(self, message: Any) -> None:
        """Dead-letter the message with the traceback of the failure that killed it."""
        failure = message._exception  # stuffed by the worker, cleared after this call
        if failure is not None:
            kept = message._message.copy(
                options={"traceback": "".join(traceback.format_exception(failure, limit=30))}
            )
            body = f"{self.broker.namespace}:{self.queue_name}.msgs"
            redis_id = message.options["redis_message_id"]
            try:
                if self.broker.client.hexists(body, redis_id):
                    self.broker.client.hset(body, redis_id, kept.encode())
            except redis.ConnectionError as error:
                raise ConnectionClosed(error) from None
        super().nack(message)


class OutreachRedisBroker(RedisBroker):
    """The Redis broker of every process: delayed messages wait in Redis, and unreadable
    messages go to the dead-letter queue."""

    def __init__(self, **parameters: Any) -> None:
        super().__init__(**parameters)
        self.delays = Delays(self.client, self.namespace)

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _Consumer

    def enqueue(self, message: dramatiq.Message, *, delay: int | None = None) -> dramatiq.Message:
        """A message with a delay waits in Redis for its time (worker.redis_delays)."""
        if not delay or delay <= 0:
            return super().enqueue(message)
        return self.enqueue_later([(message, delay)])[0]

    def enqueue_later(
        self, delayed: Sequence[tuple[dramatiq.Message, int]]
    ) -> list[dramatiq.Message]:
        """Messages each with its delay (ms, more than 0), in one round trip; each through the
        enqueue hooks as by `enqueue`. A lost connection raises as Dramatiq's own enqueue does
        (redis.ConnectionError)."""
        sent = []
        for message, delay in delayed:
            # A fresh id in Redis for each enqueue, as Dramatiq's own (a retry is enqueued again).
            message = message.copy(options={"redis_message_id": str(uuid4())})
            self.emit_before("enqueue", message, delay)
            sent.append((message, delay))
        now = current_millis()
        self.delays.add_many(
            [
                (m.queue_name, m.options["redis_message_id"], m.encode(), now + delay)
                for m, delay in sent
            ]
        )
        for message, delay in sent:
            self.emit_after("enqueue", message, delay)
        return [message for message, _ in sent]

    def queues_waited_on(self) -> list[str]:
        """The queues delayed messages can wait for (not Dramatiq's own delay queues)."""
        return sorted(name for name in self.queues if name != dq_name(name))

    def flush(self, queue_name: str) -> None:
        super().flush(queue_name)
        self.delays.forget(queue_name)
