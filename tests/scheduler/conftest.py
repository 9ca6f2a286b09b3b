"""Scheduler fixtures: fake jobs that record their fires, locks on one fakeredis server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import fakeredis
import pytest

from producers.scheduler.firing import RedisFireLocks
from producers.scheduler.loop import Scheduler
from producers.scheduler.schedules import Schedule, default_schedules
from storage.settings import Settings


class Recorder:
    """Fake jobs: each schedule's calls, by fire time."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime]] = []

    def job(self, name: str) -> Callable[[datetime], dict[str, Any]]:
        def run(fire_time: datetime) -> dict[str, Any]:
            self.calls.append((name, fire_time))
            return {"enqueued": 1}

        return run

    def jobs(self, schedules: list[Schedule]) -> dict[str, Callable[[datetime], dict[str, Any]]]:
        return {s.name: self.job(s.name) for s in schedules}

    def times(self, name: str) -> list[datetime]:
        return [when for schedule, when in self.calls if schedule == name]

    def duplicates(self) -> list[tuple[str, datetime]]:
        return [fire for fire, count in Counter(self.calls).items() if count > 1]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def redis_server() -> fakeredis.FakeServer:
    """One fake Redis server: every scheduler of a test sees the same locks."""
    return fakeredis.FakeServer()


@pytest.fixture
def defaults() -> list[Schedule]:
    return default_schedules(Settings())


@pytest.fixture
def make_scheduler(redis_server, recorder) -> Callable[..., Scheduler]:
    """A scheduler on the shared fake Redis whose jobs record into `recorder`."""

    def make(schedules: list[Schedule], owner: str = "scheduler-a", **kwargs: Any) -> Scheduler:
        client = fakeredis.FakeRedis(server=redis_server)
        locks = RedisFireLocks(client, "outreach-test", owner=owner)
        return Scheduler(schedules, locks, jobs=recorder.jobs(schedules), **kwargs)

    return make


@pytest.fixture
def log_stream():
    """The process's JSON log lines, at INFO, for one test."""
    import io
    import logging

    from worker.logging import configure_logging

    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", stream)
    yield stream
    root.handlers, level = saved
    root.setLevel(level)


def log_lines(stream) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
