"""Finding hunt work and enqueueing it: the daily sweep, and one hunt on an operator's request.

The sweep claims a run row per (hunt, account-local day) before enqueueing (unique constraint),
so a second sweep for the same day, or a second scheduler, enqueues nothing again. Only ids go
through Redis.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from storage import clock
from storage.db import database, write_transaction
from storage.errors import InvalidState, NotFound
from storage.models.accounts import Account
from storage.models.hunts import ACTIVE, Hunt, HuntRun
from storage.settings import get_settings
from worker.hunts.pacing import forget_before, local_day
from worker.logging import get_logger

log = get_logger("outreach.hunts.sweep")

# Hunts read and claimed per query (keyset pages).
SWEEP_PAGE_SIZE = 500
# Pacing counters kept this long after their day (any time zone's day is over by then).
PACING_KEPT = timedelta(days=7)


def _send(hunt_id: int, run_id: int | None = None) -> str:
    from worker.actors.hunts import process_hunt

    args = (hunt_id,) if run_id is None else (hunt_id, run_id)
    return str(process_hunt.send(*args).message_id)


def _send_runs(runs: list[tuple[int, int]]) -> None:
    from worker.actors.hunts import process_hunt
    from worker.enqueue import enqueue_many

    enqueue_many(process_hunt.message(hunt_id, run_id) for hunt_id, run_id in runs)


def _claim_page(
    page: list[tuple[int, str]], fire_time: datetime, claim: str, now: datetime
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int]:
    """Claim the page's runs; returns (new runs, lost runs to enqueue again, already claimed)."""
    days = {hunt_id: local_day(zone, fire_time) for hunt_id, zone in page}
    cutoff = now - timedelta(seconds=get_settings().relay_after_seconds)
    with write_transaction():
        HuntRun.insert_many(
            [(hunt_id, day, claim, now) for hunt_id, day in days.items()],
            fields=[HuntRun.hunt, HuntRun.day, HuntRun.claim, HuntRun.enqueued_at],
        ).on_conflict_ignore().execute()
        new = [
            (run.hunt_id, run.id)
            for run in HuntRun.select(HuntRun.id, HuntRun.hunt).where(
                (HuntRun.claim == claim) & HuntRun.hunt.in_(list(days))
            )
        ]
        # Claimed earlier the same day, never finished, enqueued long ago: the message was lost
        # (a crash between commit and enqueue, or Redis lost it). Enqueue it again, once.
        lost: list[tuple[int, int]] = []
        candidates = HuntRun.select(HuntRun.id, HuntRun.hunt, HuntRun.day).where(
            HuntRun.hunt.in_(list(days))
            & HuntRun.day.in_(sorted(set(days.values())))
            & (HuntRun.claim != claim)
            & HuntRun.finished_at.is_null()
            & HuntRun.error.is_null()
            & (HuntRun.enqueued_at < cutoff)
        )
        for run in candidates:
            if run.day != days[run.hunt_id]:
                continue
            taken = (
                HuntRun.update(enqueued_at=now)
                .where((HuntRun.id == run.id) & (HuntRun.enqueued_at < cutoff))
                .execute()
            )
            if taken:
                lost.append((run.hunt_id, run.id))
    return new, lost, len(days) - len(new)


def sweep(fire_time: datetime) -> dict[str, Any]:
    """Enqueue one run per active auto-refresh hunt for the account-local day of `fire_time`.

    Idempotent for a day: a second call enqueues only runs whose message was lost (claimed more
    than ``OUTREACH_RELAY_AFTER`` ago and never finished).
    """
    fire_time = clock.as_utc(fire_time)
    claim = uuid.uuid4().hex
    now = clock.now()
    counts = {"hunts": 0, "enqueued": 0, "already_claimed": 0, "requeued": 0}
    last_id = 0
    with database.connection_context():
        while True:
            query = (
                Hunt.select(Hunt.id, Account.timezone)
                .join(Account)
                .where((Hunt.status == ACTIVE) & Hunt.auto_refresh & (Hunt.id > last_id))
                .order_by(Hunt.id)
                .limit(SWEEP_PAGE_SIZE)
                .tuples()
            )
            page = cast(list[tuple[int, str]], list(query))
            if not page:
                break
            last_id = page[-1][0]
            new, lost, already = _claim_page(page, fire_time, claim, now)
            # After the commit: a crash here leaves claimed runs that the next sweep re-enqueues.
            # The page's messages go in pipelined chunks, not a Redis round trip each.
            _send_runs(new + lost)
            counts["hunts"] += len(page)
            counts["enqueued"] += len(new)
            counts["requeued"] += len(lost)
            counts["already_claimed"] += already - len(lost)
        # Old days' counters are history nobody reads: the daily sweep keeps the table small.
        counts["pacing_rows_deleted"] = forget_before(fire_time.date() - PACING_KEPT)
    result: dict[str, Any] = {"fire_time": fire_time.isoformat(), **counts}
    log.info("hunts.sweep", **result)
    return result


def enqueue_hunt(hunt_id: int) -> dict[str, Any]:
    """Run one hunt now (an operator's request); its pacing limit and credits still hold."""
    with database.connection_context():
        hunt = Hunt.get_or_none(Hunt.id == hunt_id)
        if hunt is None:
            raise NotFound(f"hunt {hunt_id} does not exist")
        if hunt.status != ACTIVE:
            raise InvalidState(f"hunt {hunt_id} is {hunt.status}; only an active hunt runs")
    message_id = _send(hunt_id)
    log.info("hunts.enqueued", hunt_id=hunt_id, message_id=message_id)
    return {"hunt_id": hunt_id, "message_id": message_id, "queue": "hunt"}
