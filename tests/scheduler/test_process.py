"""Two real `outreach scheduler` processes on the real Redis fire each fire exactly once."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

from tests.conftest import REDIS_TEST_URL, redis_client
from tests.processes import ROOT, running, service_env, stop, wait_until
from tests.scheduler.jobs import fires_key

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.process]

# How many fires the two processes must make together before they are stopped.
FIRES_WANTED = 4


def fire_lines(path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "scheduler.fire":
                lines.append(event)
    return lines


def test_two_scheduler_processes_fire_each_second_once(postgres_url, redis_namespace, tmp_path):
    # Given a schedule every second whose job counts its fires in Redis
    schedules = tmp_path / "schedules.json"
    schedules.write_text(
        json.dumps(
            [
                {
                    "name": f"every-second-{redis_namespace}",
                    "cron": "* * * * * *",
                    "job": "tests.scheduler.jobs.count_fire",
                }
            ]
        )
    )
    env = service_env(
        postgres_url,
        REDIS_TEST_URL,
        redis_namespace,
        OUTREACH_SCHEDULES=str(schedules),
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    env.pop("OUTREACH_CLOCK", None)
    client = redis_client()
    logs = [tmp_path / "scheduler-a.log", tmp_path / "scheduler-b.log"]
    # When two scheduler processes run side by side
    command = ["outreach", "scheduler"]
    with running(command, env, logs[0]) as a, running(command, env, logs[1]) as b:
        wait_until(
            lambda: all("scheduler.started" in p.read_text() for p in logs),
            timeout=60,
            what="both schedulers to start",
        )
        started = client.hlen(fires_key(redis_namespace))
        wait_until(
            lambda: client.hlen(fires_key(redis_namespace)) >= started + FIRES_WANTED,
            timeout=60,
            what=f"{FIRES_WANTED} fires with both schedulers up",
        )
        # Then SIGTERM stops each cleanly
        stop(a, signal.SIGTERM)
        stop(b, signal.SIGTERM)
        assert (a.returncode, b.returncode) == (0, 0)
    # And every fire was counted once, and logged once across both processes
    counts = {k.decode(): int(v) for k, v in client.hgetall(fires_key(redis_namespace)).items()}
    assert len(counts) >= FIRES_WANTED
    assert set(counts.values()) == {1}
    logged = Counter(line["fire_time"] for path in logs for line in fire_lines(path))
    assert set(logged) == set(counts) and set(logged.values()) == {1}
    for path in logs:
        assert "scheduler.stopped" in path.read_text()
