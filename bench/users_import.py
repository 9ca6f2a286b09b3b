"""Members import speed and memory, on SQLite and on PostgreSQL. `python -m bench.users_import`.

A CSV of 100,000 members (every column filled) is imported into a fresh database, then imported
again (every row an update), each in a fresh interpreter so its peak memory is its own; the same
for 10,000 rows, so the two peaks show whether memory grows with the file. Target: 10 s or less
for the 100,000-row import on each database, and a peak within 50 MB of the small file's.
Wall-clock and CPU seconds are both given: the machine is shared, and a busy one stretches the
first without the second.

Options: --rows N --small N --skip-postgres
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import uuid
from pathlib import Path

from bench.common import POSTGRES_ADMIN_URL, _admin, report, run_isolated

SECONDS_TARGET = 10
MEMORY_MARGIN_MB_TARGET = 50

_IMPORT = """
import json, time
from bench.common import peak_rss_mb
from storage import clock
from storage.db import database, init_database
from storage.migrate import migrate
from storage.models import Account
from worker.users_import import import_users

init_database({url!r})
with database.connection_context():
    migrate()
    account = Account.get_or_none(Account.name == "bench") or Account.create(
        name="bench", created_at=clock.now()
    )
    figures = {{}}
    for run in ("first", "again"):
        started, cpu = time.perf_counter(), time.process_time()
        result = import_users(account.id, {path!r})
        assert not result.bad_rows and not result.stopped, result
        figures[run] = {{
            "seconds": round(time.perf_counter() - started, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "created": result.created,
            "updated": result.updated,
        }}
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
print(json.dumps(figures))
"""


def write_members(path: Path, rows: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "external_id", "name", "email", "phone", "whatsapp_id", "group_id",
                "preferred_destination", "locale", "opt_out", "last_activity",
            ]
        )  # fmt: skip
        for n in range(rows):
            in_group = n % 5 == 0
            out.writerow(
                [
                    f"member-{n}", f"Member {n}", f"Member.{n}@Example.com",
                    f"+33 6 {n // 10_000 % 100:02d} {n // 100 % 100:02d} {n % 100:02d} 00",
                    f"336{n:08d}@c.us", "120363041234567890@g.us" if in_group else "",
                    "group" if in_group else "individual", ("fr", "en", "pt-BR")[n % 3],
                    "yes" if n % 17 == 0 else "no", f"2026-11-{1 + n % 28:02d}T08:30:00Z",
                ]
            )  # fmt: skip


def _measure(url: str, path: Path) -> dict[str, object]:
    return run_isolated(_IMPORT.format(url=url, path=str(path)))


def _on_sqlite(scratch: Path, path: Path, tag: str) -> dict[str, object]:
    return _measure(f"sqlite:///{scratch}/{tag}.sqlite3", path)


def _on_postgres(path: Path) -> dict[str, object]:
    name = f"outreach_bench_users_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE DATABASE {name}")
    try:
        return _measure(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, path)
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    figures: dict[str, object] = {"rows": args.rows, "small_rows": args.small}
    with tempfile.TemporaryDirectory(prefix="bench-users-") as tmp:
        scratch = Path(tmp)
        big, small = scratch / "big.csv", scratch / "small.csv"
        write_members(big, args.rows)
        write_members(small, args.small)
        figures["file_mb"] = round(big.stat().st_size / 1e6, 1)
        backends = {"sqlite": lambda p, tag: _on_sqlite(scratch, p, tag)}
        if not args.skip_postgres:
            backends["postgres"] = lambda p, tag: _on_postgres(p)
        for backend, measure in backends.items():
            large, little = measure(big, "big"), measure(small, "small")
            figures[backend] = {
                "import": large["first"],
                "reimport": large["again"],
                "peak_rss_mb": large["peak_rss_mb"],
                "small_file_peak_rss_mb": little["peak_rss_mb"],
                "meets_seconds_target": large["first"]["seconds"] <= SECONDS_TARGET,  # type: ignore[index]
                "meets_memory_target": large["peak_rss_mb"]  # type: ignore[operator]
                <= little["peak_rss_mb"] + MEMORY_MARGIN_MB_TARGET,  # type: ignore[operator]
            }
    report(figures)


if __name__ == "__main__":
    main()
