"""What a worker read of slow-changing rows (senders, accounts), kept for a couple of seconds.

Every send would otherwise read its sender and its account again; an operator's change is
seen within CACHE_SECONDS by every worker.
"""

from __future__ import annotations

import time as monotonic
from collections.abc import Callable
from typing import Any, TypeVar

from storage.db import database

# How long a read is reused: short enough that a pause or a new sender takes effect at once.
CACHE_SECONDS = 2.0

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


def forget(kind: str | None = None, key: object = None) -> None:
    """Drop what was read: everything, one kind, or one key of a kind."""
    if kind is None:
        _cache.clear()
        return
    for full in [k for k in _cache if k[1] == kind and (key is None or k[2] == key)]:
        _cache.pop(full, None)
