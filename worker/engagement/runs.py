"""Daily runs (seed 004's JobResult), kept in the database and added up across every worker.

Each worker records one outcome row per (run, user, check type), in the transaction of the work
it describes; the unique constraint makes a redelivered message count once. The outcome rows
are the only truth: a run is finished when the sweep has closed and every message it enqueued
has an outcome. Nothing else is written per message (a shared counter would be one row that
every worker locks); instead a watch message counts the rows every moment until the run is
complete, then marks it finished, once, with the time of its last outcome. A report settles a
run the same way, so a lost watch message only delays the finish until someone looks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from peewee import fn

from storage import clock
from storage.db import write_transaction
from storage.errors import NotFound
from storage.models.engagement import (
    FAILED,
    OUTCOMES,
    SKIPPED,
    SUCCEEDED,
    EngagementOutcome,
    EngagementRun,
)
from worker.engagement import sql
from worker.logging import get_logger

log = get_logger("outreach.engagement")

# The report lists at most this many errors; `failed` still counts them all.
MAX_REPORTED_ERRORS = 100
# Opted-out users found by the sweep are recorded this many at a time.
SKIP_CHUNK = 1000
# A run still incomplete this long after it started is no longer watched (a report settles it).
WATCH_LIMIT = timedelta(hours=6)
# The watch looks again after this many milliseconds per message still without an outcome...
WATCH_MS_PER_PENDING = 1
# ...and at most this long after its last look.
WATCH_MAX_DELAY_MS = 30_000


def start_run(fire_time: datetime) -> EngagementRun:
    now = clock.now()
    run: EngagementRun = EngagementRun.create(fire_time=fire_time, started_at=now)
    log.info(
        "engagement.run.started",
        run_id=run.id,
        fire_time=fire_time.isoformat(),
        started_at=now.isoformat(),
    )
    return run


def close_sweep(run_id: int, expected: int, skipped: int) -> bool:
    """The sweep enqueued `expected` messages and recorded `skipped` users itself; True when
    that already completes the run (nobody enqueued, or the workers were faster)."""
    EngagementRun.update(
        expected=expected, skipped_at_sweep=skipped, sweep_finished_at=clock.now()
    ).where(EngagementRun.id == run_id).execute()
    return settle(run_id)


# One message's outcome. A redelivered message may find its outcome recorded already: that
# one stands, and the message counts once.
_OUTCOME = sql.Insert(
    EngagementOutcome.run,
    EngagementOutcome.user_id,
    EngagementOutcome.check_type,
    EngagementOutcome.outcome,
    EngagementOutcome.detail,
    EngagementOutcome.recorded_at,
    ignore_conflicts=True,
)


def outcome_row(
    run_id: int, user_id: int, check_type: str, outcome: str, detail: str | None = None
) -> sql.Row:
    """One message's outcome, as a row to write with the work it describes."""
    assert outcome in OUTCOMES, outcome
    return _OUTCOME.row(run_id, user_id, check_type, outcome, detail, clock.now())


def record_outcome(
    run_id: int, user_id: int, check_type: str, outcome: str, detail: str | None = None
) -> bool:
    """Record what happened to one enqueued message; False when it already had an outcome.

    One statement: atomic on its own, and part of the caller's transaction when there is one.
    """
    return bool(sql.insert_row(outcome_row(run_id, user_id, check_type, outcome, detail)))


def record_skipped(run_id: int, user_ids: Iterable[int], check_type: str, detail: str) -> int:
    """Outcomes for users the sweep did not enqueue (opted out): counted, not waited for."""
    now = clock.now()
    rows = [(run_id, user_id, check_type, SKIPPED, detail, now) for user_id in user_ids]
    recorded = 0
    with write_transaction():
        for start in range(0, len(rows), SKIP_CHUNK):
            recorded += (
                EngagementOutcome.insert_many(
                    rows[start : start + SKIP_CHUNK],
                    fields=list(_OUTCOME.fields),
                )
                .on_conflict_ignore()
                .as_rowcount()
                .execute()
            )
    return recorded


def get_run(run_id: int) -> EngagementRun:
    run: EngagementRun | None = EngagementRun.get_or_none(EngagementRun.id == run_id)
    if run is None:
        raise NotFound(f"engagement run {run_id} does not exist")
    return run


def _outcome_count(run_id: int) -> int:
    count: int = EngagementOutcome.select().where(EngagementOutcome.run == run_id).count()
    return count


def _complete(run: EngagementRun, outcomes: int) -> bool:
    """Every enqueued message has an outcome (the sweep's own skips are not enqueued)."""
    return run.expected is not None and outcomes - int(run.skipped_at_sweep) >= run.expected


def settle(run_id: int, outcomes: int | None = None) -> bool:
    """Finish the run if it is complete; True when it is finished (by this call or before).

    The finish is a conditional update, so the end of a run is logged exactly once.
    """
    run = get_run(run_id)
    if run.finished_at is not None:
        return True
    if outcomes is None:
        outcomes = _outcome_count(run_id)
    if not _complete(run, outcomes):
        return False
    last = (
        EngagementOutcome.select(fn.MAX(EngagementOutcome.recorded_at))
        .where(EngagementOutcome.run == run_id)
        .scalar()
    )
    finished_at = max(last, run.started_at) if last is not None else clock.now()
    finished = (
        EngagementRun.update(finished_at=finished_at)
        .where((EngagementRun.id == run_id) & EngagementRun.finished_at.is_null())
        .execute()
    )
    if finished:
        log_finished(run_id)
    return True


def watch(run_id: int) -> bool:
    """Settle the run; True when it should be looked at again later."""
    return watch_again_in(run_id, 0) is not None


def watch_again_in(run_id: int, at_least_ms: int) -> int | None:
    """Settle the run; None when it is not to be looked at again, else the milliseconds until
    the next look: `WATCH_MS_PER_PENDING` for each message still without an outcome (about the
    time the workers take to record them), at least `at_least_ms`, at most `WATCH_MAX_DELAY_MS`.

    Each look counts the run's outcomes: a million-user run looked at four times a second
    spent PostgreSQL's CPU counting, that its workers needed.
    """
    run = get_run(run_id)
    if run.finished_at is not None:
        return None
    outcomes = _outcome_count(run_id)
    if settle(run_id, outcomes):
        return None
    if clock.now() - run.started_at > WATCH_LIMIT:
        log.warning(
            "engagement.run.unfinished",
            run_id=run_id,
            pending=job_result(run_id)["pending"],
            watched_for_seconds=int(WATCH_LIMIT.total_seconds()),
        )
        return None
    run = get_run(run_id)  # the sweep may have closed since it was read
    pending = 0
    if run.expected is not None:
        pending = max(0, run.expected - (outcomes - int(run.skipped_at_sweep)))
    return max(at_least_ms, min(WATCH_MAX_DELAY_MS, pending * WATCH_MS_PER_PENDING))


def job_result(run_id: int) -> dict[str, Any]:
    """Seed 004's JobResult for one run, from the outcomes every worker recorded.

    Settles the run on the way (a run complete but not yet marked finished becomes finished).
    """
    run = get_run(run_id)
    totals = dict.fromkeys(OUTCOMES, 0)
    by_check: dict[str, dict[str, int]] = {}
    counts = cast(
        Iterable[tuple[str, str, int]],
        EngagementOutcome.select(
            EngagementOutcome.check_type,
            EngagementOutcome.outcome,
            fn.COUNT(EngagementOutcome.id).alias("n"),
        )
        .where(EngagementOutcome.run == run_id)
        .group_by(EngagementOutcome.check_type, EngagementOutcome.outcome)
        .tuples(),
    )
    for check_type, outcome, n in counts:
        totals[outcome] += n
        by_check.setdefault(check_type, dict.fromkeys(OUTCOMES, 0))[outcome] = n
    failures = cast(
        Iterable[tuple[int, str, str]],
        EngagementOutcome.select(
            EngagementOutcome.user_id, EngagementOutcome.check_type, EngagementOutcome.detail
        )
        .where((EngagementOutcome.run == run_id) & (EngagementOutcome.outcome == FAILED))
        .order_by(EngagementOutcome.id)
        .limit(MAX_REPORTED_ERRORS)
        .tuples(),
    )
    errors = [
        {"userId": user_id, "check": check_type, "error": detail}
        for user_id, check_type, detail in failures
    ]
    processed = sum(totals.values())
    if run.finished_at is None and settle(run_id, processed):
        run = get_run(run_id)
    end = run.finished_at or clock.now()
    pending = None
    if run.expected is not None:
        pending = max(0, run.expected - (processed - int(run.skipped_at_sweep)))
    return {
        "run_id": run.id,
        "fire_time": run.fire_time.isoformat(),
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "finished": run.finished_at is not None,
        "processed": processed,
        "succeeded": totals[SUCCEEDED],
        "failed": totals[FAILED],
        "skipped": totals[SKIPPED],
        "errors": errors,
        "durationMs": int((end - run.started_at).total_seconds() * 1000),
        "enqueued": run.expected,
        "pending": pending,
        "by_check": by_check,
    }


def log_finished(run_id: int) -> None:
    result = job_result(run_id)
    log.info(
        "engagement.run.finished",
        run_id=run_id,
        duration_ms=result["durationMs"],
        processed=result["processed"],
        succeeded=result["succeeded"],
        failed=result["failed"],
        skipped=result["skipped"],
    )
