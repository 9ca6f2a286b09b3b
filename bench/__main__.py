"""Every bench in sequence, one report: `python -m bench [--quick] [--only NAME ...] [--out F]`.

Each bench (a module of this package with a ``summary`` function) runs in an interpreter of
its own, as `python -m bench.NAME` with its ``QUICK_ARGS`` or ``FULL_ARGS``, and writes its
figures to a file as well as printing them; its ``summary`` turns them into the figures asked
of it, each with its target and whether it was met. The report is one JSON document on
standard output (and in `--out`); a table of the same figures goes to standard error, so
`python -m bench > report.json` keeps the JSON alone. `python -m bench.readme REPORT.json`
writes the table into docs/speed.md.

Exit status 1 when a bench failed to run; a target not met is a figure, not a failure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.common import REPORT_FILE_VARIABLE, ROOT, load_average

# Columns of the table when standard error is not a terminal.
TABLE_WIDTH = 150
# The order the benches run in; any other bench of the package runs after these, by name.
ORDER = ("bare", "campaigns", "engagement", "hunts", "console")


def benches() -> dict[str, ModuleType]:
    """Every module of this package that exposes a summary, in running order."""
    found = {}
    package = Path(__file__).parent
    # A bench may set variables for its own run when imported: they are not the others'.
    environment = dict(os.environ)
    for info in pkgutil.iter_modules([str(package)]):
        if info.name.startswith("_") or info.name in ("common", "readme", "noop", "occupancy"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "summary", None)):
            found[info.name] = module
    os.environ.clear()
    os.environ.update(environment)
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(found.items(), key=lambda item: (rank.get(item[0], len(ORDER)), item[0])))


def run_bench(name: str, module: ModuleType, quick: bool) -> dict[str, Any]:
    """Run one bench in its own interpreter; its figures, summary and how long it took."""
    args = list(getattr(module, "QUICK_ARGS" if quick else "FULL_ARGS", []))
    entry: dict[str, Any] = {"command": f"python -m bench.{name} {' '.join(args)}".strip()}
    print(f"bench: {entry['command']}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "figures.json"
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *args],
            cwd=ROOT,
            env={**os.environ, REPORT_FILE_VARIABLE: str(out)},
            stdout=subprocess.DEVNULL,
            check=False,
        )
        entry["seconds"] = round(time.perf_counter() - start, 1)
        if done.returncode != 0 or not out.exists():
            entry["error"] = f"exit status {done.returncode}"
            return entry
        raw = json.loads(out.read_text())
    entry["load_average_at_start"] = raw.get("load_average_at_start")
    entry["load_average_at_end"] = raw.get("load_average_at_end")
    try:
        entry["summary"] = module.summary(raw)
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        entry["error"] = f"summary: {type(exc).__name__}: {exc}"
    entry["figures"] = raw
    return entry


def build_report(names: list[str], quick: bool) -> dict[str, Any]:
    available = benches()
    unknown = [name for name in names if name not in available]
    if unknown:
        raise SystemExit(
            f"error: unknown bench {', '.join(unknown)} (expected: {', '.join(available)})"
        )
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_average(),
        "benches": {},
    }
    start = time.perf_counter()
    for name, module in available.items():
        if names and name not in names:
            continue
        report["benches"][name] = run_bench(name, module, quick)
    report["seconds"] = round(time.perf_counter() - start, 1)
    report["load_average_at_end"] = load_average()
    report["figures"] = flat_figures(report)
    judged = [f for f in report["figures"] if f["met"] is not None]
    report["targets"] = {
        "met": sum(1 for f in judged if f["met"]),
        "judged": len(judged),
        "with_target": sum(1 for f in report["figures"] if f["target"] is not None),
    }
    return report


def flat_figures(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every bench's summary as one list, each figure with its bench and that bench's load."""
    rows = []
    for name, entry in report["benches"].items():
        for figure_name, figure in entry.get("summary", {}).items():
            rows.append(
                {
                    "bench": name,
                    "name": figure_name,
                    **figure,
                    "load_average": [entry["load_average_at_start"], entry["load_average_at_end"]],
                }
            )
    return rows


def _value(figure: dict[str, Any]) -> str:
    value = figure["value"]
    if value is None:
        return "not measured"
    text = f"{value:,}" if isinstance(value, int | float) else str(value)
    return f"{text} {figure['unit']}"


def _met(figure: dict[str, Any]) -> str:
    return {True: "met", False: "NOT met", None: ""}[figure["met"]]


def _load(load: list[Any]) -> str:
    start, end = load
    return f"{start[0] if start else '?'} / {end[0] if end else '?'}"


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=(
            f"python -m bench{' --quick' if report['quick'] else ''}: "
            f"{report['targets']['met']} of {report['targets']['judged']} targets met, "
            f"{report['seconds']} s, load average {report['load_average_at_start'][0]} / "
            f"{report['load_average_at_end'][0]}"
        )
    )
    for column in ("figure", "measured", "target", "", "bare actor msg/s", "load (1 min)"):
        table.add_column(column, justify="right" if column.startswith(("m", "b")) else "left")
    for figure in report["figures"]:
        bare = figure["bare_actor_messages_per_second"]
        table.add_row(
            figure["name"],
            _value(figure),
            figure["target"] or "",
            _met(figure),
            f"{bare:,}" if bare else "",
            _load(figure["load_average"]),
        )
    # Wide enough for the figures' names when the table goes to a file or a pipe.
    console = Console(stderr=True, width=None if sys.stderr.isatty() else TABLE_WIDTH)
    console.print(table)
    for name, entry in report["benches"].items():
        if "error" in entry:
            console.print(f"error: bench {name}: {entry['error']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a few minutes in all")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="these benches")
    parser.add_argument("--out", type=Path, help="also write the JSON report to this file")
    args = parser.parse_args()
    report = build_report(args.only, args.quick)
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    print_table(report)
    if any("error" in entry for entry in report["benches"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
