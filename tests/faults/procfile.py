"""The Procfile's ``worker`` and ``scheduler`` started as real processes, each in its own process
group and killed by pid, their JSON logs read and waited on; and one ``outreach`` command run as an
operator types it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.processes import BIN, ROOT, wait_until


def procfile_command(name: str, **variables: str) -> list[str]:
    """The Procfile's line for `name`, expanded by bash with `variables` in its environment."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return subprocess.run(
                ["bash", "-c", f"printf '%s\\n' {command.strip()}"],
                capture_output=True,
                text=True,
                check=True,
                env={"PATH": os.environ.get("PATH", ""), **variables},
            ).stdout.split()
    raise KeyError(name)


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One `outreach` command, as an operator types it."""
    return subprocess.run(
        [str(BIN / "outreach"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a process log (anything else, a traceback say, is skipped)."""
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


class Proc:
    """A started process (its own process group) and its log file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def lines(self) -> list[dict[str, Any]]:
        return json_lines(self.log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]


class Processes:
    """Starts the Procfile's processes; every one is killed by its process group at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []
        self.kills = 0

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Proc:
        log = self.log_dir / f"{name}-{len(self.started)}.log"
        with log.open("ab") as handle:
            popen = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def worker(self, env: dict[str, str], processes: int = 2, threads: int = 8) -> Proc:
        """The Procfile's `worker:` line with WORKER_PROCESSES and WORKER_THREADS set."""
        command = procfile_command(
            "worker", WORKER_PROCESSES=str(processes), WORKER_THREADS=str(threads)
        )
        return self.start("worker", command, env)

    def scheduler(self, env: dict[str, str]) -> Proc:
        return self.start("scheduler", procfile_command("scheduler"), env)

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group (a dramatiq worker is a parent and its children)."""
        if not proc.alive():
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            self.kills += 1
            proc.popen.wait(timeout=10)

    def stop(self, proc: Proc, timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL if it is still there after `timeout`; the exit status."""
        if proc.alive():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        return proc.popen.returncode

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.alive():
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                proc.popen.wait(timeout=10)


def wait_for_log(proc: Proc, event: str, timeout: float = 60, count: int = 1) -> None:
    wait_until(
        lambda: len(proc.events(event)) >= count,
        timeout=timeout,
        interval=0.1,
        what=f"{count} {event!r} in {proc.log.name}",
    )


def wait_for_worker(proc: Proc, timeout: float = 60) -> None:
    """Until the worker's processes have booted (Dramatiq says so in its log)."""
    wait_until(
        lambda: "Worker process is ready" in proc.text() or not proc.alive(),
        timeout=timeout,
        interval=0.1,
        what=f"the worker in {proc.log.name} to boot",
    )
    assert proc.alive(), f"the worker exited at boot:\n{proc.text()[-3000:]}"
