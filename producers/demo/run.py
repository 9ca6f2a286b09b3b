"""Driving the demo: load the sample data, fire the real schedules day after day, and read back
from the database what each day did.

The scheduler is the real one (:func:`producers.scheduler.loop.build_scheduler`, with the
default schedules), on the in-process broker: after every fire it does the work the fire
enqueued, deliveries included. A fake clock moves from fire to fire, so four days take seconds.
Where the demo writes is :mod:`producers.demo.paths`; what a day did, :mod:`producers.demo.days`;
the summary and its problems, :mod:`producers.demo.summary`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from producers.demo.days import day_report
from producers.demo.paced import run_paced_batch
from producers.demo.paths import demo_paths
from producers.demo.replies import simulate_replies
from producers.demo.runtime import Runtime, embedded_runtime
from producers.demo.sample_data import DEMO_DAYS, DEMO_START, SampleData, load_sample_data
from producers.demo.summary import add_log_sends, summarize
from producers.embedded import drain

# The day people write back (see producers.demo.replies), at noon UTC.
REPLY_DAY = 2
REPLY_AT = timedelta(hours=12)
# The account that sends the paced WhatsApp batch (producers.demo.paced).
PACED_ACCOUNT = "Garage Dupont"
# A day is simulated up to one minute before midnight, so that each fire falls in its own day.
DAY_END_MARGIN = timedelta(minutes=1)


def _simulate(
    runtime: Runtime,
    data: SampleData,
    start: datetime,
    days: int,
    on_day: Callable[[dict[str, Any]], None] | None,
) -> list[dict[str, Any]]:
    from producers.scheduler.loop import build_scheduler
    from storage.db import database

    scheduler = build_scheduler(runtime.settings)
    reports = []
    for number in range(1, days + 1):
        day_start = start + timedelta(days=number - 1)
        day_end = day_start + timedelta(days=1)
        replies: list[dict[str, Any]] = []
        outcomes = []
        if number == REPLY_DAY:
            outcomes = scheduler.run_until(day_start + REPLY_AT, runtime.clock)
            with database.connection_context():
                replies = simulate_replies()
            drain(runtime.broker)  # the stop's confirmation goes out
        outcomes += scheduler.run_until(day_end - DAY_END_MARGIN, runtime.clock)
        with database.connection_context():
            report = day_report(number, data, day_start, day_end, outcomes)
        report["replies"] = replies
        reports.append(report)
        if on_day is not None:
            on_day(report)
    return reports


def run_demo(
    database: Path | None = None,
    *,
    days: int = DEMO_DAYS,
    start: datetime = DEMO_START,
    on_start: Callable[[dict[str, Any]], None] | None = None,
    on_day: Callable[[dict[str, Any]], None] | None = None,
    on_paced: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the demo into a new SQLite file; returns its report (days, the paced batch, summary,
    where things are).

    `on_start` is called once the sample data is loaded, `on_day` after each simulated day,
    `on_paced` after the paced batch, so a caller can print as it goes.
    """
    paths = demo_paths(database)
    began = time.monotonic()
    with embedded_runtime(paths.database, paths.log, start) as runtime:
        from storage.db import database as db
        from storage.migrate import migrate

        migrate()
        with db.connection_context():
            data = load_sample_data(start)
        setup = {
            "database": str(paths.database),
            "log_file": str(paths.log),
            "ignored_environment": list(runtime.ignored),
            "simulated_from": start.isoformat(),
            "simulated_to": (start + timedelta(days=days)).isoformat(),
            "sample_data": data.describe(),
        }
        if on_start is not None:
            on_start(setup)
        reports = _simulate(runtime, data, start, days, on_day)
        with db.connection_context():
            # The morning after the simulated days: a paced WhatsApp batch.
            paced = run_paced_batch(
                runtime, data.accounts[PACED_ACCOUNT], start + timedelta(days=days)
            )
            if on_paced is not None:
                on_paced(paced)
            summary = summarize(data, reports)
    add_log_sends(summary, paths.log)
    return {
        **setup,
        "days": reports,
        "paced_batch": paced,
        "summary": summary,
        "wall_seconds": round(time.monotonic() - began, 2),
    }
