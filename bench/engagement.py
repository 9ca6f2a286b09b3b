"""The daily engagement run: N users through real Redis, PostgreSQL and the Procfile worker.

`python -m bench.engagement [N] [--memory 10000] [--no-memory] [--bare M]`

Prints one JSON object:
- `run`: seconds from the start of the sweep (worker start included, as for the bare actor) to
  the run finished and the last goodbye recorded as sent on the `log` channel; users per second;
  the worker's CPU a user and the peak memory of each of its processes; `run.sweep`: the sweep's
  own time, users enqueued per second (target >= 20,000) and peak memory, in an interpreter of
  its own started before the clock;
- `bare_actor`: the do-nothing actor through the same broker and worker settings, same run,
  just before and just after the run (the ratio uses the mean of the two); at most 50,000
  messages each unless `--bare` says otherwise;
- `throughput_ratio`: users per second / bare messages per second (target >= 0.4);
- `sweep_memory`: the sweep on its own for each `--memory` size, and how far above the smallest
  one's peak the run's sweep peaked (target: 20 MB or less).

Users (seeded by the server in three statements): a third due for each check (inactivity,
goodbye timeout, reminder); a tenth of the inactive third opted out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import dramatiq

from bench import common
from bench.common import (
    bare_actor_around,
    bench_environment,
    figure,
    load_average,
    report,
    wait_for,
)
from worker.delivery_queue import DELIVERY_QUEUES

# Goodbyes go to the dry-run channel: the bench measures this system, not WhatsApp.
os.environ["OUTREACH_ENGAGEMENT_CHANNEL"] = "log"

# A daily run's fire time; the users' dates are set relative to it.
FIRE_TIME = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
# One inactive user in this many has opted out of re-engagement.
OPT_OUT_EVERY = 10
# Targets (issue 14): the sweep's rate, its memory over a small sweep's, the run's ratio.
SWEEP_RATE_TARGET = 20_000
SWEEP_MEMORY_MARGIN_MB = 20
RATE_TARGET = 0.4
# The sweep on its own at this size is the memory reference.
MEMORY_REFERENCE_USERS = 10_000
# The bare actor's rate hardly depends on its size past this: a million-user run measures the
# floor with this many messages (before and after), not a million each.
BARE_MESSAGES_MAX = 50_000
# Seconds between two progress lines of a run.
PROGRESS_EVERY = 30
# A run not finished after this long has failed.
RUN_TIMEOUT = 3600
# The queues of the run's messages: one per user and check, the run's watch, the goodbyes
# (handed to the delivery, on the default queue or an account's lane).
RUN_QUEUES = ("engagement", *DELIVERY_QUEUES)


def expected_counts(n: int) -> dict[str, int]:
    """What the run should do for the users `seed(n)` writes."""
    due_for_goodbye = n // 3  # ids 3, 6, 9, ...
    opted_out = n // (3 * OPT_OUT_EVERY)
    return {
        "goodbyes": due_for_goodbye - opted_out,
        "opted_out": opted_out,
        "dormant": n - due_for_goodbye,
    }


# The users, their profiles and their states, each one statement run by the server: a million
# users are written in seconds, with nothing built in Python. User i is due for the inactivity
# check when i % 3 == 0 (one in ten of those opted out), for the goodbye timeout when
# i % 3 == 1, for the reminder when i % 3 == 2.
_SEED_SQL = (
    """
    INSERT INTO app_user (id, account_id, name, phone, created_at)
    SELECT i, %(account)s, 'user ' || i, '+3361' || lpad(i::text, 7, '0'), %(now)s
    FROM generate_series(1, %(n)s) AS i
    """,
    """
    INSERT INTO user_profile
        (user_id, preferred_destination, whatsapp_jid, locale, reengagement_opt_out, created_at)
    SELECT i, %(individual)s, '3361' || lpad(i::text, 7, '0') || '@c.us',
           (ARRAY['en', 'fr', 'pt-BR'])[i %% 3 + 1], i %% %(opt_out_every)s = 0, %(now)s
    FROM generate_series(1, %(n)s) AS i
    """,
    """
    INSERT INTO engagement_state
        (user_id, state, last_activity_at, goodbye_expires_at, remind_at, version, updated_at)
    SELECT i,
           (ARRAY[%(active)s, %(goodbye_sent)s, %(remind_later)s])[i %% 3 + 1],
           %(now)s - (ARRAY[20, 17, 30])[i %% 3 + 1] * interval '1 day',
           CASE WHEN i %% 3 = 1 THEN %(now)s - interval '1 hour' END,
           CASE WHEN i %% 3 = 2 THEN %(now)s - interval '2 hours' END,
           0, %(now)s
    FROM generate_series(1, %(n)s) AS i
    """,
)


def seed(n: int) -> dict[str, int]:
    """N users in the database, a third due for each check; returns what the run should do."""
    from storage.db import database
    from storage.models import Account
    from storage.models.engagement import ACTIVE, GOODBYE_SENT, INDIVIDUAL, REMIND_LATER

    now = FIRE_TIME
    with database.connection_context():
        account = Account.create(name="bench", created_at=now)
        params = {
            "account": account.id,
            "n": n,
            "now": now.replace(tzinfo=None),  # stored as naive UTC, as UTCDateTimeField does
            "opt_out_every": 3 * OPT_OUT_EVERY,
            "individual": INDIVIDUAL,
            "active": ACTIVE,
            "goodbye_sent": GOODBYE_SENT,
            "remind_later": REMIND_LATER,
        }
        with database.atomic():
            for statement in _SEED_SQL:
                database.execute_sql(statement, params)
        # Ids were given explicitly: move the sequence past them, and let the planner see the rows.
        database.execute_sql(f"SELECT setval(pg_get_serial_sequence('app_user', 'id'), {n})")
        database.execute_sql("ANALYZE")
    return expected_counts(n)


# The sweep, in a fresh interpreter of its own so that its memory is its own: it gets ready
# (imports, a connection), says so, waits for the word, then resets its memory high-water mark
# (clear_refs) and sweeps. The peak is read from /proc/self/status; getrusage's ru_maxrss is no
# use here, as a child started by fork and exec inherits the parent's peak.
_SWEEP = """
import json, sys, time
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
print("ready", flush=True)
sys.stdin.readline()
before = status_mb("VmRSS")
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # reset VmHWM to the current size
start, cpu = time.perf_counter(), time.process_time()
started = run_daily(datetime.fromisoformat(sys.argv[1]))
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
peak = status_mb("VmHWM")
print(json.dumps({
    "run_id": started["run_id"],
    "enqueued": started["enqueued"],
    "rss_before_sweep_mb": round(before, 1),
    "peak_rss_mb": round(peak, 1),
    "sweep_growth_mb": round(peak - before, 1),
    "sweep_seconds": round(seconds, 3),
    "sweep_cpu_seconds": round(cpu, 3),
}), flush=True)
"""


class _Sweep:
    """The sweep's interpreter, started and made ready before the clock starts."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SWEEP, FIRE_TIME.isoformat()],
            cwd=common.ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        if self.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError("the sweep's interpreter did not start")

    def run(self) -> dict[str, Any]:
        """Sweep now; returns its figures when it has enqueued everything."""
        self.stdin.write("go\n")
        self.stdin.flush()
        line = self.stdout.readline()
        if self.proc.wait(60) != 0 or not line:
            raise RuntimeError("the sweep failed")
        figures: dict[str, Any] = json.loads(line)
        return figures


def progress(line: str) -> None:
    """A line on standard error while a long bench runs (the figures come at the end)."""
    print(f"bench.engagement: {line}", file=sys.stderr, flush=True)


def measure_run(env: dict[str, str], n: int) -> dict[str, Any]:
    from storage.settings import get_settings

    get_settings.cache_clear()
    start = time.perf_counter()
    expected = seed(n)
    seed_seconds = time.perf_counter() - start
    progress(f"seeded {n:,} users in {seed_seconds:.1f} s")

    importlib.import_module("worker.actors")  # the Redis broker of this environment
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

    sweep = _Sweep(env)
    start = time.perf_counter()
    with common.worker(env):
        swept = sweep.run()
        progress(f"sweep: {json.dumps(swept)}")
        last_said = [time.perf_counter()]

        def finished() -> bool:
            # A long run says how far it has gone (from Redis alone: cheap to ask).
            now = time.perf_counter()
            if now - last_said[0] >= PROGRESS_EVERY:
                left = sum(broker.do_qsize(queue) for queue in RUN_QUEUES)
                progress(
                    f"run: {now - start:.0f} s, {left:,} messages left of "
                    f"{swept['enqueued']:,}, {(swept['enqueued'] - left) / (now - start):.1f}/s"
                )
                last_said[0] = now
            return done(swept["run_id"])

        wait_for(finished, timeout=RUN_TIMEOUT, interval=0.1)
        elapsed = time.perf_counter() - start
    with database.connection_context():
        result = job_result(swept["run_id"])
        sent = OutboxMessage.select().where(OutboxMessage.status == "sent").count()
    return {
        "users": n,
        "seed_seconds": round(seed_seconds, 1),
        "seconds": round(elapsed, 3),
        "users_per_second": round(n / elapsed, 1),
        "worker_cpu_ms_per_user": common.cpu_ms_per_message(n),
        "worker_peak_rss_mb": common.last_worker_peak_rss_mb(),
        "sweep": {
            **{k: v for k, v in swept.items() if k != "run_id"},
            # Users enqueued (the opted-out are recorded, not enqueued) a second of the sweep.
            "users_per_second": round(swept["enqueued"] / swept["sweep_seconds"], 1),
            # The sweep's own CPU a user: what its rate would be with a core to itself.
            "cpu_us_per_user": round(swept["sweep_cpu_seconds"] / n * 1e6, 1),
        },
        "enqueued": result["enqueued"],
        "succeeded": result["succeeded"],
        "failed": result["failed"],
        "skipped": result["skipped"],
        "goodbyes_sent": sent,
        "expected": expected,
    }


def measure_sweep_memory(sizes: list[int]) -> dict[str, Any]:
    """The sweep alone (no worker) for each size, in a fresh database and interpreter."""
    from storage.settings import get_settings

    figures: dict[str, Any] = {}
    for size in sizes:
        with bench_environment("engmem") as env:
            get_settings.cache_clear()
            seed(size)
            figures[str(size)] = _Sweep(env).run()
            figures[str(size)].pop("run_id")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("users", nargs="?", type=int, default=10_000)
    parser.add_argument(
        "--memory",
        default=str(MEMORY_REFERENCE_USERS),
        help="sizes of the sweep on its own, whose peak memory the run's sweep is compared with",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the reference sweeps")
    parser.add_argument(
        "--bare",
        type=int,
        default=None,
        help=f"bare actor messages (default: the users, at most {BARE_MESSAGES_MAX:,})",
    )
    args = parser.parse_args()
    bare_messages = args.bare or min(args.users, BARE_MESSAGES_MAX)
    figures: dict[str, Any] = {"load_average_at_start": load_average()}
    with bench_environment("engagement") as env:
        figures["bare_actor"], figures["run"] = bare_actor_around(
            env, bare_messages, lambda: measure_run(env, args.users)
        )
    figures["throughput_ratio"] = round(
        figures["run"]["users_per_second"] / figures["bare_actor"]["messages_per_second"], 3
    )
    if not args.no_memory:
        memory = measure_sweep_memory([int(size) for size in args.memory.split(",")])
        reference = min(f["peak_rss_mb"] for f in memory.values())
        memory["run_sweep_over_reference_mb"] = round(
            figures["run"]["sweep"]["peak_rss_mb"] - reference, 1
        )
        figures["sweep_memory"] = memory
    report(figures)


def summary(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The figures asked of this bench, with their targets."""
    run = figures["run"]
    bare = figures["bare_actor"]["messages_per_second"]
    users = f"{run['users']:,} users"
    memory = figures.get("sweep_memory", {})
    workers = [mb for name, mb in run.get("worker_peak_rss_mb", {}).items() if name != "parent"]
    return {
        f"engagement: sweep, {users}": figure(
            run["sweep"]["users_per_second"], "users/s enqueued", SWEEP_RATE_TARGET
        ),
        f"engagement: sweep peak memory over its {MEMORY_REFERENCE_USERS:,}-user peak": figure(
            memory.get("run_sweep_over_reference_mb"),
            "MB",
            SWEEP_MEMORY_MARGIN_MB,
            at_most=True,
        ),
        f"engagement: daily run, {users}": figure(
            figures["throughput_ratio"], "x bare actor", RATE_TARGET, bare_actor=bare
        ),
        "engagement: sweep CPU a user": figure(run["sweep"]["cpu_us_per_user"], "µs"),
        "engagement: daily run time": figure(run["seconds"], "s"),
        "engagement: worker CPU a user": figure(run["worker_cpu_ms_per_user"], "ms"),
        "engagement: worker process peak memory (largest)": figure(
            max(workers) if workers else None, "MB"
        ),
    }


# What `python -m bench --quick` and `python -m bench` run.
QUICK_ARGS = ["10000"]
FULL_ARGS = ["100000"]


if __name__ == "__main__":
    main()
