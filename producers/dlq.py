"""Dramatiq's dead-letter queues on Redis: list them, and requeue messages on purpose.

Dramatiq keeps a dead message in ``<ns>:<queue>.XQ`` (a sorted set of Redis message ids by the
time it died) and its body in ``<ns>:<queue>.XQ.msgs``, for 7 days, and has no requeue API.
A requeue takes the message out of the set first (so two operators never requeue it twice),
enqueues a clean copy (no retry count, no traceback) on its queue, then drops the body; if the
enqueue fails, the message goes back where it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis
from dramatiq.errors import DecodeError

from storage.errors import ConfigurationError, InvalidInput, NotFound
from worker.logging import get_logger

log = get_logger("outreach.dlq")

# Options that belong to the failed attempts, not to the message.
ATTEMPT_OPTIONS = frozenset(
    {"retries", "traceback", "requeue_timestamp", "redis_message_id", "eta"}
)
DEAD_SUFFIX = ".XQ"
DELAY_SUFFIX = ".DQ"
# The actor shown for a dead body that is not a Dramatiq message at all (junk pushed into a queue).
UNREADABLE_ACTOR = "(unreadable)"


@dataclass(frozen=True)
class DeadMessage:
    queue: str
    redis_id: str
    died_at: datetime
    message: dramatiq.Message
    # False for a body that is not a Dramatiq message: listed, never requeued.
    readable: bool = True

    @property
    def message_id(self) -> str:
        return self.message.message_id

    @property
    def error(self) -> str | None:
        """The last line of the traceback the message carries: the failure that killed it (the
        workers' broker writes it into the dead body; see worker.redis_broker)."""
        traceback = str(self.message.options.get("traceback") or "").strip()
        return traceback.splitlines()[-1] if traceback else None

    def describe(self) -> dict[str, Any]:
        # Arguments are ids only (nothing personal travels through Redis).
        return {
            "message_id": self.message_id,
            "redis_id": self.redis_id,
            "queue": self.queue,
            "actor": self.message.actor_name,
            "args": list(self.message.args),
            "kwargs": self.message.kwargs,
            "retries": self.message.options.get("retries", 0),
            "died_at": self.died_at.isoformat(),
            "error": self.error,
        }


def redis_broker() -> RedisBroker:
    broker = dramatiq.get_broker()
    if not isinstance(broker, RedisBroker):
        raise ConfigurationError(
            "dead letters live in Redis: set REDIS_URL (the in-process broker keeps none)"
        )
    return broker


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def dead_letter_queues(broker: RedisBroker) -> list[str]:
    """Queue names with a dead-letter set, found in Redis (declared or not)."""
    prefix = f"{broker.namespace}:"
    pattern = f"{_glob_escape(prefix)}*{DEAD_SUFFIX}"
    names = set()
    for key in broker.client.scan_iter(match=pattern, count=1000):
        name = _text(key)
        names.add(name.removeprefix(prefix).removesuffix(DEAD_SUFFIX))
    return sorted(names)


def list_dead(broker: RedisBroker, queue: str | None = None) -> list[DeadMessage]:
    """Every dead message, oldest first within each queue."""
    queues = [queue] if queue else dead_letter_queues(broker)
    dead = []
    for name in queues:
        key = f"{broker.namespace}:{name}{DEAD_SUFFIX}"
        entries = cast(
            list[tuple[bytes | str, float]], broker.client.zrange(key, 0, -1, withscores=True)
        )
        if not entries:
            continue
        ids = [_text(member) for member, _ in entries]
        scores = [score for _, score in entries]
        bodies = broker.client.hmget(f"{key}.msgs", ids)
        for redis_id, score, body in zip(ids, scores, bodies, strict=True):
            if body is None:
                continue  # expired between the two reads
            died_at = datetime.fromtimestamp(score / 1000, UTC)
            try:
                message = dramatiq.Message.decode(body)
            except DecodeError as exc:
                dead.append(
                    DeadMessage(name, redis_id, died_at, _unreadable(name, redis_id, exc), False)
                )
                continue
            dead.append(DeadMessage(name, redis_id, died_at, message))
    return dead


def _unreadable(queue: str, redis_id: str, exc: DecodeError) -> dramatiq.Message:
    """A stand-in for a body that does not decode: its Redis id, and why it cannot be read."""
    why = f"{type(exc.error).__name__}: {exc.error}"[:200]
    return dramatiq.Message(
        queue_name=queue,
        actor_name=UNREADABLE_ACTOR,
        args=(),
        kwargs={},
        options={"traceback": f"not a Dramatiq message ({len(exc.data)} bytes): {why}"},
        message_id=redis_id,
        message_timestamp=0,
    )


def find_dead(broker: RedisBroker, message_id: str) -> DeadMessage:
    """A dead message by its Dramatiq message id (as the logs show it) or its Redis id."""
    if not message_id.strip():
        raise InvalidInput("a message id is required")
    for dead in list_dead(broker):
        if message_id in (dead.message_id, dead.redis_id):
            return dead
    raise NotFound(f"no dead-lettered message {message_id}")


def clean_copy(dead: DeadMessage) -> dramatiq.Message:
    """The message as first sent: same id, actor and arguments, a fresh start for retries."""
    message = dead.message
    options = {k: v for k, v in message.options.items() if k not in ATTEMPT_OPTIONS}
    return dramatiq.Message(
        queue_name=message.queue_name.removesuffix(DELAY_SUFFIX),
        actor_name=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        options=options,
        message_id=message.message_id,
        message_timestamp=current_millis(),
    )


def requeue(broker: RedisBroker, dead: DeadMessage) -> bool:
    """Put one dead message back on its queue; False if someone else requeued it first, or
    if it is not a Dramatiq message (it would only die again)."""
    if not dead.readable:
        return False
    key = f"{broker.namespace}:{dead.queue}{DEAD_SUFFIX}"
    if not broker.client.zrem(key, dead.redis_id):
        return False
    try:
        broker.enqueue(clean_copy(dead))
    except BaseException:
        broker.client.zadd(key, {dead.redis_id: int(dead.died_at.timestamp() * 1000)})
        raise
    broker.client.hdel(f"{key}.msgs", dead.redis_id)
    log.info(
        "dlq.requeued",
        message_id=dead.message_id,
        queue=dead.queue,
        actor=dead.message.actor_name,
    )
    return True
