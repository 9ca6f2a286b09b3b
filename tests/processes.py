"""Real processes for integration tests: a `dramatiq` worker started as the Procfile starts it.

Every process is started in its own session and killed by pid when the test ends.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def procfile_command(name: str, **variables: str) -> list[str]:
    """The Procfile's line for `name`, with its ${VAR:-default} expanded like a shell would."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            expanded = subprocess.run(
                ["bash", "-c", f"printf '%s\\n' {command.strip()}"],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "WORKER_PROCESSES": "1", "WORKER_THREADS": "4", **variables},
            ).stdout.split()
            return expanded
    raise KeyError(name)


def service_env(database_url: str, redis_url: str, namespace: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "OUTREACH_REDIS_NAMESPACE": namespace,
        "OUTREACH_LOG_LEVEL": "INFO",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.update(extra)
    return env


@contextmanager
def running(
    command: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a command in its own process group; kill the whole group afterwards."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


@contextmanager
def worker_process(
    env: dict[str, str], log_path: Path, extra_args: str = ""
) -> Iterator[subprocess.Popen[bytes]]:
    """The Procfile's `worker:` command (1 process, 4 threads unless the env says otherwise)."""
    command = procfile_command("worker") + shlex.split(extra_args)
    with running(command, env, log_path) as proc:
        yield proc


# What each of a worker command's processes logs once it consumes.
WORKER_READY = "Worker process is ready for action."


def wait_ready(log_path: Path, processes: int = 1, timeout: float = 60) -> None:
    """Until the worker command logging to `log_path` has its processes consuming."""

    def ready() -> bool:
        return log_path.exists() and log_path.read_text().count(WORKER_READY) >= processes

    wait_until(ready, timeout=timeout, interval=0.1, what=f"the worker logging to {log_path}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def web_process(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """The Procfile's `web:` command on a free port; yields its base URL once it answers."""
    port = free_port()
    command = procfile_command("web", PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    with running(command, env, log_path) as proc:

        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"web process exited: {log_path.read_text()[-2000:]}")
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, timeout=30, what="the web process to answer")
        yield base


def wait_until(
    condition: Callable[[], bool], timeout: float = 60, interval: float = 0.2, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
