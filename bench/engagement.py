"""The daily engagement run: N users through real Redis, PostgreSQL and the Procfile worker.

`python -m bench.engagement [N] [--memory 10000,100000] [--no-memory]`

Prints one JSON object:
- `run`: seconds from the start of the sweep (worker start included, as for the bare actor) to
  the run finished and the last goodbye recorded as sent on the `log` channel; users per second;
- `bare_actor`: the do-nothing actor through the same broker and worker settings, same run,
  just before and just after the run (the ratio uses the mean of the two);
- `throughput_ratio`: users per second / bare messages per second (target >= 0.35);
- `sweep_memory`: the sweep's peak memory for each size, each in a fresh interpreter
  (target: within 20 MB of each other).

Users: a third due for each check (inactivity, goodbye timeout, reminder); a tenth of the
inactive third opted out.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq

from bench import common
from bench.common import (
    bare_actor_around,
    bench_environment,
    load_average,
    report,
    run_isolated,
    wait_for,
)

# Goodbyes go to the dry-run channel: the bench measures this system, not WhatsApp.
os.environ["OUTREACH_ENGAGEMENT_CHANNEL"] = "log"

# A daily run's fire time; the users' dates are set relative to it.
FIRE_TIME = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
# Rows per insert while seeding.
SEED_CHUNK = 5000
# One inactive user in this many has opted out of re-engagement.
OPT_OUT_EVERY = 10
# The queues of the run's messages: one per user and check, the run's watch, the goodbyes.
RUN_QUEUES = ("engagement", "delivery")


def seed(n: int) -> dict[str, int]:
    """N users in the database, a third due for each check; returns what the run should do."""
    from storage.db import database
    from storage.models import Account, EngagementState, User, UserProfile

    now = FIRE_TIME
    counts = {"goodbyes": 0, "opted_out": 0, "dormant": 0}
    with database.connection_context():
        account = Account.create(name="bench", created_at=now)
        for start in range(0, n, SEED_CHUNK):
            ids = range(start + 1, min(n, start + SEED_CHUNK) + 1)
            with database.atomic():
                User.insert_many(
                    [(i, account.id, f"user {i}", f"+3361{i:07d}", now) for i in ids],
                    fields=[User.id, User.account, User.name, User.phone, User.created_at],
                ).execute()
                profiles = []
                states = []
                for i in ids:
                    kind = i % 3
                    opted = kind == 0 and i % (3 * OPT_OUT_EVERY) == 0
                    profiles.append(
                        (
                            i,
                            "individual",
                            f"3361{i:07d}@c.us",
                            ("en", "fr", "pt-BR")[i % 3],
                            opted,
                            now,
                        )
                    )
                    if kind == 0:
                        states.append((i, "active", now - timedelta(days=20), None, None, now))
                        counts["opted_out" if opted else "goodbyes"] += 1
                    elif kind == 1:
                        expired = now - timedelta(hours=1)
                        states.append(
                            (i, "goodbye_sent", now - timedelta(days=17), expired, None, now)
                        )
                        counts["dormant"] += 1
                    else:
                        due = now - timedelta(hours=2)
                        states.append((i, "remind_later", now - timedelta(days=30), None, due, now))
                        counts["dormant"] += 1
                UserProfile.insert_many(
                    profiles,
                    fields=[
                        UserProfile.user,
                        UserProfile.preferred_destination,
                        UserProfile.whatsapp_jid,
                        UserProfile.locale,
                        UserProfile.reengagement_opt_out,
                        UserProfile.created_at,
                    ],
                ).execute()
                EngagementState.insert_many(
                    states,
                    fields=[
                        EngagementState.user,
                        EngagementState.state,
                        EngagementState.last_activity_at,
                        EngagementState.goodbye_expires_at,
                        EngagementState.remind_at,
                        EngagementState.updated_at,
                    ],
                ).execute()
        # Ids were given explicitly: move the sequence past them, and let the planner see the rows.
        database.execute_sql(f"SELECT setval(pg_get_serial_sequence('app_user', 'id'), {n})")
        database.execute_sql("ANALYZE")
    return counts


def measure_run(env: dict[str, str], n: int) -> dict[str, Any]:
    from storage.settings import get_settings

    get_settings.cache_clear()
    expected = seed(n)

    importlib.import_module("worker.actors")  # the Redis broker of this environment
    from producers.engagement import run_daily
    from storage.db import database
    from storage.models import OutboxMessage
    from worker.engagement.runs import job_result

    broker: Any = dramatiq.get_broker()

    def done(run_id: int) -> bool:
        # The database is asked only once the run's queues are all but empty (the watch message
        # may be left): its report costs a few milliseconds of PostgreSQL a call, and asked
        # every 0.1 s through the whole run it took CPU from the run it was timing. Redis is
        # asked as the bare actor's end is found.
        if sum(broker.do_qsize(queue) for queue in RUN_QUEUES) > 1:
            return False
        with database.connection_context():
            if not job_result(run_id)["finished"]:
                return False
            sent = OutboxMessage.select().where(OutboxMessage.status == "sent").count()
            return bool(sent >= expected["goodbyes"])

    start = time.perf_counter()
    with common.worker(env):
        started = run_daily(FIRE_TIME)
        sweep_seconds = time.perf_counter() - start
        wait_for(lambda: done(started["run_id"]), timeout=600, interval=0.1)
        elapsed = time.perf_counter() - start
    with database.connection_context():
        result = job_result(started["run_id"])
        sent = OutboxMessage.select().where(OutboxMessage.status == "sent").count()
    return {
        "users": n,
        "seconds": round(elapsed, 3),
        "sweep_seconds": round(sweep_seconds, 3),
        "users_per_second": round(n / elapsed, 1),
        "worker_cpu_ms_per_user": common.cpu_ms_per_message(n),
        "enqueued": result["enqueued"],
        "succeeded": result["succeeded"],
        "failed": result["failed"],
        "skipped": result["skipped"],
        "goodbyes_sent": sent,
        "expected": expected,
    }


# Runs in a fresh interpreter: the sweep alone. Memory is read from /proc/self/status: the
# high-water mark is reset (clear_refs) just before the sweep, so the peak is the sweep's own.
# (getrusage's ru_maxrss is no use here: a child started by fork and exec inherits the
# parent's peak, so it would report the size of the process that seeded the users.)
_SWEEP_MEMORY = """
import json, time
from datetime import datetime
import worker.actors
from producers.engagement import run_daily
from storage.db import database

def status_mb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)

with database.connection_context():
    database.execute_sql("SELECT 1")
before = status_mb("VmRSS")
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # reset VmHWM to the current size
start = time.perf_counter()
started = run_daily(datetime.fromisoformat("{fire_time}"))
seconds = time.perf_counter() - start
print(json.dumps({{
    "enqueued": started["enqueued"],
    "rss_before_sweep_mb": round(before, 1),
    "peak_rss_mb": round(status_mb("VmHWM"), 1),
    "sweep_growth_mb": round(status_mb("VmHWM") - before, 1),
    "sweep_seconds": round(seconds, 3),
}}))
"""


def measure_sweep_memory(sizes: list[int]) -> dict[str, Any]:
    from storage.settings import get_settings

    figures: dict[str, Any] = {}
    for size in sizes:
        with bench_environment("engmem") as env:
            get_settings.cache_clear()
            seed(size)
            figures[str(size)] = run_isolated(
                _SWEEP_MEMORY.format(fire_time=FIRE_TIME.isoformat()), env
            )
    peaks = [f["peak_rss_mb"] for f in figures.values()]
    figures["peak_spread_mb"] = round(max(peaks) - min(peaks), 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("users", nargs="?", type=int, default=10_000)
    parser.add_argument("--memory", default="10000,100000", help="sizes for the memory check")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory check")
    args = parser.parse_args()
    figures: dict[str, Any] = {"load_average_at_start": load_average()}
    with bench_environment("engagement") as env:
        figures["bare_actor"], figures["run"] = bare_actor_around(
            env, args.users, lambda: measure_run(env, args.users)
        )
    figures["throughput_ratio"] = round(
        figures["run"]["users_per_second"] / figures["bare_actor"]["messages_per_second"], 3
    )
    if not args.no_memory:
        figures["sweep_memory"] = measure_sweep_memory(
            [int(size) for size in args.memory.split(",")]
        )
    report(figures)


if __name__ == "__main__":
    main()
