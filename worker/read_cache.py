"""What a worker read of slow-changing rows (senders, accounts), kept for a few seconds.

Every send would otherwise read its sender and its account again; an operator's change of
their settings is seen within CACHE_SECONDS by every worker. A pause is not left to this: a
paced sender's turn checks it in its own statement, and an unpaced sender's pause is read again
before a row is deferred to its end (worker.pacing).
"""

from __future__ import annotations

import time as monotonic
from collections.abc import Callable
from typing import Any, TypeVar

from storage.db import database

# How long a read is reused. Longer than a paced sender's spacing in a busy run, so that its
# sends do not each read it again (2 s was shorter: two statements more a send at 1 a second).
CACHE_SECONDS = 10.0

T = TypeVar("T")
_cache: dict[tuple[int, str, object], tuple[float, Any]] = {}


def cached(kind: str, key: object, read: Callable[[], T]) -> T:
    """`read()`'s value for (kind, key), read again after CACHE_SECONDS (per database)."""
    full = (id(database.obj), kind, key)
    found = _cache.get(full)
    now = monotonic.monotonic()
    if found is not None and now - found[0] < CACHE_SECONDS:
        return found[1]
    value = read()
    _cache[full] = (now, value)
    return value


def keep(kind: str, key: object, value: object) -> None:
    """A value of (kind, key) just read by another statement: reused as if `cached` read it."""
    _cache[(id(database.obj), kind, key)] = (monotonic.monotonic(), value)


def forget(kind: str | None = None, key: object = None) -> None:
    """Drop what was read: everything, one kind, or one key of a kind."""
    if kind is None:
        _cache.clear()
        return
    for full in [k for k in _cache if k[1] == kind and (key is None or k[2] == key)]:
        _cache.pop(full, None)
