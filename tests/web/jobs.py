"""A job that counts its calls in this process, by fire time (for trigger tests)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

CALLS: Counter[datetime] = Counter()


def count(fire_time: datetime) -> dict[str, Any]:
    CALLS[fire_time] += 1
    return {"counted": CALLS[fire_time]}


def fail(fire_time: datetime) -> dict[str, Any]:
    raise RuntimeError("the sweep's database went away")
