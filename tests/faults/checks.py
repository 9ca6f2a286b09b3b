"""Reading what the scenarios check: the broker's backlog and dead letters under a key prefix, the
outbox's statuses, and waiting until a check says nothing is missing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import redis


def broker_idle(client: redis.Redis, namespace: str) -> bool:
    """Nothing waiting, delayed or in flight on this prefix: message bodies live in the queues'
    ``.msgs`` hashes until acknowledged (the dead letters' ``.XQ.msgs`` aside)."""
    return not broker_backlog(client, namespace)


def dead_letters(client: redis.Redis, namespace: str) -> dict[str, int]:
    """Dead-lettered messages per queue."""
    found = {}
    for key in client.scan_iter(match=f"{namespace}:*.XQ", count=1000):
        count = int(client.zcard(key))
        if count:
            found[key.decode().removeprefix(f"{namespace}:")] = count
    return found


def outbox_statuses() -> Counter[str]:
    from storage.db import database
    from storage.models import OutboxMessage

    with database.connection_context():
        query = OutboxMessage.select(OutboxMessage.status).tuples()
        return Counter(status for (status,) in query)


def wait_for(check: Callable[[], str], timeout: float, what: str, interval: float = 0.5) -> None:
    """Until `check` returns "" (done); otherwise it says what is still missing, and the last
    thing it said is in the error if time runs out."""
    deadline = time.monotonic() + timeout
    missing = "never checked"
    while time.monotonic() < deadline:
        missing = check()
        if not missing:
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {missing}")


def broker_backlog(client: redis.Redis, namespace: str) -> dict[str, int]:
    """Messages waiting, delayed or in flight per queue (empty when the broker is idle)."""
    found = {}
    for key in client.scan_iter(match=f"{namespace}:*.msgs", count=1000):
        name = key.decode()
        if not name.endswith(".XQ.msgs"):
            count = int(client.hlen(name))
            if count:
                found[name.removeprefix(f"{namespace}:").removesuffix(".msgs")] = count
    return found
