"""Demo fixtures: the demo run once in this process and once as a real `outreach` process.

Each run takes a few seconds, so each is made once per module and every test reads it: its
output, and the SQLite file and log file it left behind (read with the standard library's
sqlite3, not through the project's code).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from click.testing import CliRunner

from producers.cli import main
from tests.processes import BIN

# Service settings a user's shell may have: the demo must run without them whatever they say.
UNREACHABLE = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing",
    "OUTREACH_SCHEDULES": "/nonexistent/schedules.json",
}


@dataclass
class DemoRun:
    database: Path
    log_file: Path
    exit_code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None = None
    # What the calling process looked like after an in-process run.
    after: dict[str, Any] = field(default_factory=dict)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database) as connection:
            return connection.execute(sql, params).fetchall()

    def sends(self) -> list[str]:
        """Idempotency keys of every message the log channel sent, one per send."""
        keys = []
        for line in self.log_file.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event.get("event") == "message.sent":
                keys.append(event["idempotency_key"])
        return keys


def _line_value(stdout: str, label: str) -> str:
    for line in stdout.splitlines():
        words = line.split()
        if words[:1] == [label]:
            return words[1]
    raise AssertionError(f"no {label!r} line in the output:\n{stdout}")


@pytest.fixture(scope="module")
def in_process_run() -> Iterator[DemoRun]:
    """`outreach demo` in this process, no --database (a fresh temporary directory), with
    REDIS_URL and DATABASE_URL set to services that do not answer."""
    broker_before = dramatiq.get_broker()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in UNREACHABLE.items():
            patch.setenv(name, value)
        result = CliRunner().invoke(main, ["demo"])
        after = {
            "environment": {name: os.environ.get(name) for name in UNREACHABLE},
            "broker_is_the_same": dramatiq.get_broker() is broker_before,
        }
    database = Path(_line_value(result.stdout, "database"))
    run = DemoRun(
        database=database,
        log_file=Path(_line_value(result.stdout, "logs")),
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        after=after,
    )
    yield run
    if database.parent.name.startswith("outreach-demo-"):
        shutil.rmtree(database.parent)


@pytest.fixture(scope="module")
def subprocess_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`outreach demo --json --database PATH` as a real process, started from an empty
    directory, with the same unreachable services in its environment."""
    base = tmp_path_factory.mktemp("demo")
    workdir = base / "cwd"
    workdir.mkdir()
    database = base / "out" / "demo.sqlite3"
    database.parent.mkdir()
    completed = subprocess.run(
        [str(BIN / "outreach"), "demo", "--json", "--database", str(database)],
        cwd=workdir,
        env={**os.environ, **UNREACHABLE},
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(completed.stdout) if completed.returncode == 0 else None
    run = DemoRun(
        database=database,
        log_file=database.with_suffix(".log"),
        exit_code=completed.returncode,
        stdout=completed.stdout,
        stderr=completed.stderr,
        report=report,
        after={"workdir": sorted(p.name for p in workdir.iterdir())},
    )
    return run


@pytest.fixture(params=["in_process", "subprocess"])
def demo_run(request: pytest.FixtureRequest) -> DemoRun:
    """Each run in turn, for what both must have left in their database."""
    run: DemoRun = request.getfixturevalue(f"{request.param}_run")
    assert run.exit_code == 0, run.stdout + run.stderr
    return run
