"""A job for scheduler processes under test: counts each fire in Redis, by fire time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis

from storage.settings import get_settings


def fires_key(namespace: str) -> str:
    return f"{namespace}:test-fires"


def count_fire(fire_time: datetime) -> dict[str, Any]:
    settings = get_settings()
    assert settings.redis_url, "this job runs under a Redis scheduler"
    client = redis.Redis.from_url(settings.redis_url)
    count = client.hincrby(fires_key(settings.redis_namespace), fire_time.isoformat(), 1)
    return {"counted": count}
