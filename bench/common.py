"""Shared pieces of the benchmarks: real services, a Procfile worker, the bare-actor floor.

Every benchmark prints one JSON object. Ratios against the bare actor measured in the same run
are what count: this machine is shared and noisy.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSTGRES_ADMIN_URL = os.environ.get(
    "OUTREACH_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("OUTREACH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
# Worker settings for every measured run, bare actor included: as in the Procfile.
WORKER_PROCESSES = int(os.environ.get("WORKER_PROCESSES", "2"))
WORKER_THREADS = int(os.environ.get("WORKER_THREADS", "8"))


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@contextmanager
def bench_environment(prefix: str = "bench") -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database and Redis namespace; sets this process up to use them."""
    name = f"outreach_{prefix}_{uuid.uuid4().hex[:8]}"
    namespace = f"outreach-{prefix}-{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE DATABASE {name}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "OUTREACH_REDIS_NAMESPACE": namespace,
        "OUTREACH_LOG_LEVEL": "WARNING",
        # Whatever the hour of the run: bench.pacing measures pacing on senders of its own.
        "OUTREACH_SENDING_HOURS": "always",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    os.environ.update(
        {
            k: env[k]
            for k in (
                "DATABASE_URL",
                "REDIS_URL",
                "OUTREACH_REDIS_NAMESPACE",
                "OUTREACH_LOG_LEVEL",
                "OUTREACH_SENDING_HOURS",
            )
        }
    )
    from storage.db import close_all, init_database
    from storage.migrate import migrate

    init_database(url)
    migrate()
    try:
        yield env
    finally:
        close_all()
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"*{namespace}*", count=1000):
            client.delete(key)
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def worker(env: dict[str, str], module: str = "worker.actors") -> Iterator[subprocess.Popen[bytes]]:
    """`dramatiq` as the Procfile runs it, with the benchmark's worker settings.

    When it has stopped, :func:`last_worker_cpu_seconds` gives the CPU its processes used and
    :func:`last_worker_peak_rss_mb` the memory high-water mark of each of them.
    """
    global _last_worker_cpu_seconds, _last_worker_peaks
    cpu_before = _children_cpu_seconds()
    command = [
        "dramatiq",
        module,
        "--skip-logging",
        "--processes",
        str(WORKER_PROCESSES),
        "--threads",
        str(WORKER_THREADS),
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        # Read before the stop: a process that has exited has no status left to read.
        _last_worker_peaks = _peak_rss_of_tree(proc.pid)
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        # The dramatiq parent waits for its worker processes, so their CPU is counted too.
        _last_worker_cpu_seconds = _children_cpu_seconds() - cpu_before


_last_worker_cpu_seconds = 0.0
_last_worker_peaks: dict[str, float] = {}


def _status_mb(pid: int | str, key: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_rss_of_tree(root: int) -> dict[str, float]:
    """VmHWM of `root` and of every process below it, by pid ("parent" for the root)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The command name is in parentheses and may hold spaces: split after it.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    peaks = {}
    for pid in tree:
        peak = _status_mb(pid, "VmHWM")
        if peak is not None:
            peaks["parent" if pid == root else str(pid)] = round(peak, 1)
    return peaks


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def last_worker_cpu_seconds() -> float:
    """User and system CPU of the last worker run (all its processes), in seconds.

    Unlike a rate, this hardly moves with the other work on a shared machine: it says what a
    message costs the worker, where a rate also says how much CPU was left for it.
    """
    return _last_worker_cpu_seconds


def last_worker_peak_rss_mb() -> dict[str, float]:
    """Peak resident memory, in MB, of each process of the last worker run: the dramatiq
    parent ("parent") and its worker processes (by pid), read just before it was stopped."""
    return dict(_last_worker_peaks)


def cpu_ms_per_message(messages: int) -> float:
    return round(last_worker_cpu_seconds() / messages * 1000, 3)


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Seconds until `condition` holds; raises after `timeout`."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)
    return time.perf_counter() - start


def bare_actor_rate(env: dict[str, str], messages: int) -> dict[str, float]:
    """Messages per second of a do-nothing actor through the same broker and worker settings.

    Timed like the real runs: from the first enqueue to the last ack, worker start included.
    Enqueued as the real work is, in pipelined chunks (`worker.enqueue.enqueue_many`), so the
    floor measures the worker, not a producer sending one message per round trip.
    """
    import dramatiq

    import bench.noop as noop
    from worker.enqueue import enqueue_many

    broker = dramatiq.get_broker()
    start = time.perf_counter()
    with worker(env, "bench.noop"):
        enqueue_many(noop.noop.message(i) for i in range(messages))
        enqueued = time.perf_counter() - start
        broker.join("bench_noop", timeout=600_000)
        elapsed = time.perf_counter() - start
    return {
        "messages": messages,
        "seconds": round(elapsed, 3),
        "enqueue_seconds": round(enqueued, 3),
        "messages_per_second": round(messages / elapsed, 1),
        "worker_cpu_ms_per_message": cpu_ms_per_message(messages),
    }


def bare_actor_around(
    env: dict[str, str], messages: int, measure: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bare actor measured just before and just after `measure()`, which it returns too.

    Other work on a shared machine comes and goes within a run; the floor is the mean of the
    two, so a ratio is not skewed by the load changing between the floor and the real run.
    """
    before = bare_actor_rate(env, messages)
    print(f"bench: bare actor before: {json.dumps(before)}", file=sys.stderr, flush=True)
    result = measure()
    after = bare_actor_rate(env, messages)
    print(f"bench: bare actor after: {json.dumps(after)}", file=sys.stderr, flush=True)
    floor = {
        "before": before,
        "after": after,
        "messages_per_second": round(
            (before["messages_per_second"] + after["messages_per_second"]) / 2, 1
        ),
    }
    return floor, result


def peak_rss_mb() -> float:
    """This process's own peak resident memory so far, in MB.

    Read from VmHWM, which belongs to the process's address space: a fresh interpreter started
    by `run_isolated` reports its own peak. (getrusage's ru_maxrss survives exec on Linux, so a
    child would report the parent's peak whenever the parent was bigger.)
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# /proc/stat's columns of a CPU's time spent working: user, nice, system, irq, softirq (idle,
# iowait and steal are time it did not work for this machine).
_BUSY_COLUMNS = (0, 1, 2, 5, 6)


def machine_busy_seconds() -> float | None:
    """CPU seconds every process of the machine has used since boot (all cores), or None where
    /proc/stat is not there: a figure per message of a run, PostgreSQL's and Redis's included."""
    try:
        with open("/proc/stat") as stat:
            columns = stat.readline().split()[1:]
    except OSError:
        return None
    return sum(int(columns[i]) for i in _BUSY_COLUMNS) / os.sysconf("SC_CLK_TCK")


def load_average() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages: the figures depend on them."""
    return [round(x, 2) for x in os.getloadavg()]


def run_isolated(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run Python code in a fresh interpreter (its own peak memory) that prints one JSON object."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# `python -m bench` asks each bench to write its figures to this file as well as print them.
REPORT_FILE_VARIABLE = "OUTREACH_BENCH_FIGURES_FILE"


def report(figures: dict[str, Any]) -> None:
    figures.setdefault("load_average_at_end", load_average())
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(text)
    out = os.environ.get(REPORT_FILE_VARIABLE)
    if out:
        Path(out).write_text(text)


def figure(
    value: Any,
    unit: str,
    target: float | None = None,
    *,
    at_most: bool = False,
    bare_actor: float | None = None,
) -> dict[str, Any]:
    """One figure of a bench's summary: its value, and its target when it has one.

    The target is a floor (the value must be at least it) unless `at_most`. `met` is None for a
    figure without a target, or one the bench could not measure (value None). `bare_actor`: the
    bare actor's messages per second in the same run, for a figure that is a ratio to it.
    """
    met = None
    if target is not None and value is not None:
        met = bool(value <= target) if at_most else bool(value >= target)
    return {
        "value": value,
        "unit": unit,
        "target": None if target is None else f"{'<=' if at_most else '>='} {target:g}",
        "met": met,
        "bare_actor_messages_per_second": bare_actor,
    }


def rate_over_bare(rate: float, bare: float | None) -> dict[str, Any]:
    """A rate as a figure in bare actors (the bare actor's rate in the same run), no target."""
    return figure(round(rate / bare, 3) if bare else None, "x bare actor", bare_actor=bare)


def web_process(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`outreach web` on 127.0.0.1:`port`, its output in `log`; returns once it answers.

    Stop it with ``os.killpg(proc.pid, 15)``: it runs in a session of its own.
    """
    import httpx

    proc = subprocess.Popen(
        ["outreach", "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, timeout=60, interval=0.2)
    return proc
