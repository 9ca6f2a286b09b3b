"""The project's actors with a middleware that times what each worker thread does:
`dramatiq bench.occupancy` instead of `dramatiq worker.actors` (bench.pacing).

Each worker process keeps a JSON file up to date (at most every WRITE_EVERY seconds while it
works, and as it shuts down; a stop by the process group's SIGTERM may cut the shutdown short)
in the directory named by OUTREACH_BENCH_OCCUPANCY_DIR: its threads, how long it had run (from
the worker's boot), how long its threads spent processing messages (wall clock, and CPU), how
many messages, the longest one, and how long worker threads slept (``time.sleep``) while
processing a message: a thread that waited for a sender's slot would show there.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

import worker.actors  # noqa: F401  (declares every actor on the configured broker)

# Where each worker process writes its figures.
OCCUPANCY_DIR_VARIABLE = "OUTREACH_BENCH_OCCUPANCY_DIR"
# Seconds between two writes of a process's figures while it works.
WRITE_EVERY = 1.0


class ThreadOccupancy(Middleware):
    """Sums, per process, the wall and CPU time worker threads spend in messages."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = threading.local()
        self.booted = time.perf_counter()
        self.threads = 0
        self.busy_seconds = 0.0
        self.cpu_seconds = 0.0
        self.messages = 0
        self.longest_seconds = 0.0
        self.written = 0.0
        self.slept_seconds = 0.0
        self.sleeps = 0

    def sleep(self, seconds: float) -> None:
        """time.sleep, counted when a worker thread calls it while processing a message."""
        if getattr(self.local, "started", None) is not None:
            with self.lock:
                self.slept_seconds += seconds
                self.sleeps += 1
        _real_sleep(seconds)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.booted = time.perf_counter()
        self.threads = worker.worker_threads

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self.local.started = (time.perf_counter(), time.thread_time())

    def _done(self) -> None:
        started = getattr(self.local, "started", None)
        if started is None:
            return
        self.local.started = None
        wall = time.perf_counter() - started[0]
        cpu = time.thread_time() - started[1]
        with self.lock:
            self.busy_seconds += wall
            self.cpu_seconds += cpu
            self.messages += 1
            self.longest_seconds = max(self.longest_seconds, wall)
            due = time.perf_counter() - self.written >= WRITE_EVERY
        if due:
            self._write()

    def after_process_message(self, broker: dramatiq.Broker, message: Any, **_: Any) -> None:
        self._done()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._done()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._write()

    def _write(self) -> None:
        folder = os.environ.get(OCCUPANCY_DIR_VARIABLE)
        if not folder:
            return
        with self.lock:
            self.written = time.perf_counter()
            figures = {
                "threads": self.threads,
                "wall_seconds": self.written - self.booted,
                "busy_seconds": self.busy_seconds,
                "cpu_seconds": self.cpu_seconds,
                "messages": self.messages,
                "longest_message_seconds": self.longest_seconds,
                "slept_seconds_in_messages": self.slept_seconds,
                "sleeps_in_messages": self.sleeps,
            }
        path = Path(folder, f"{os.getpid()}.json")
        scratch = path.with_suffix(".tmp")
        scratch.write_text(json.dumps(figures))
        scratch.replace(path)


_real_sleep = time.sleep
_occupancy = ThreadOccupancy()
dramatiq.get_broker().add_middleware(_occupancy)
# Every sleep of this worker process goes through the counter (the bench's worker only).
time.sleep = _occupancy.sleep
