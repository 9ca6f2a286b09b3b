"""Dramatiq's Redis broker, with two changes to how messages are dead-lettered.

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
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed, DecodeError

from worker.logging import get_logger

log = get_logger("outreach.broker")


class _Consumer(_RedisConsumer):
    def __next__(self) -> Any:
        while True:
            try:
                return super().__next__()
            except DecodeError as exc:
                # The rest of the fetched messages are still in the cache: carry on with them.
                self._dead_letter(exc)

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


class DeadLetteringRedisBroker(RedisBroker):
    """The Redis broker of every worker: unreadable messages go to the dead-letter queue."""

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _Consumer
