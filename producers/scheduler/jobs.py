"""Adapters that give every scheduled job the same shape: ``job(fire_time) -> dict``."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def outbox_relay(fire_time: datetime) -> dict[str, Any]:
    """Repair what a crash left in the outbox (the relay does not need the fire time)."""
    from worker.outbox import relay

    return dict(relay())
