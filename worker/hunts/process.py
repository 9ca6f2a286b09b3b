"""One hunt's work for today: match, then contact as many new ads as pacing and credits allow.

A page of matched ads is contacted in one transaction of a few statements for the whole page
(worker.hunts.page): the page's pacing slots, its credits, its leads, outbox claims and
contacted ads each in one statement, and a refused contact gives back only its own slot and
credit. The page's deliveries are enqueued together, as groups, once its transaction commits.
The same hunt run twice, even at the same moment on two workers, contacts no ad twice and never
more than the day's limit: the second run queues on the pacing counter and sees the first one's
count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from storage import clock
from storage.db import database, write_transaction
from storage.errors import InvalidInput, NotFound
from storage.models.accounts import Account
from storage.models.base import RowReader
from storage.models.hunts import ACTIVE, Hunt, HuntRun
from worker.hunts import pacing, sql
from worker.hunts.criteria import find_matches, parse_criteria
from worker.hunts.page import SOURCE, PageResult, contact_page, idempotency_key
from worker.hunts.template import Part, compile_template
from worker.logging import get_logger

log = get_logger("outreach.hunts")

# Ads fetched per matching query; a run rarely needs more than one page.
PAGE_SIZE = 200

__all__ = ["PAGE_SIZE", "SOURCE", "idempotency_key", "record_failure", "run_hunt"]


@dataclass
class _Run:
    hunt: Hunt
    day: date
    now: datetime
    template: tuple[Part, ...]
    free: dict[str, int]
    contacted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def usable_channels(self) -> list[str]:
        return [c for c in self.hunt.channels if self.free.get(c, 0) > 0]


_HUNT_FIELDS = tuple(Hunt._meta.sorted_fields)
_read_hunt = RowReader(Hunt, _HUNT_FIELDS)


@lru_cache(maxsize=4)
def _load_sql(param: str) -> str:
    columns = ", ".join(f'h."{f.column_name}"' for f in _HUNT_FIELDS)
    return (
        f'SELECT {columns}, a."{Account.timezone.column_name}" '
        f'FROM "{Hunt._meta.table_name}" AS h JOIN "{Account._meta.table_name}" AS a '
        f'ON a."{Account.id.column_name}" = h."{Hunt.account.column_name}" '
        f'WHERE h."{Hunt.id.column_name}" = {param}'
    )


def _load(hunt_id: int) -> tuple[Hunt, str] | None:
    """The hunt and its account's time zone, in one statement written out (a run's first)."""
    found = database.execute_sql(_load_sql(str(database.obj.param)), [hunt_id]).fetchone()
    if found is None:
        return None
    return _read_hunt(found[:-1]), str(found[-1])


def run_hunt(hunt_id: int, run_id: int | None = None) -> dict[str, Any]:
    """Run one hunt now; safe to call twice, concurrently. Returns what it did."""
    try:
        found = _load(hunt_id)
    except ValueError as exc:  # JSONDecodeError: a JSON column holds something else
        detail = getattr(exc, "msg", str(exc))
        raise InvalidInput(
            f"hunt {hunt_id}: stored criteria or channels are not JSON ({detail})"
        ) from None
    if found is None:
        raise NotFound(f"hunt {hunt_id} does not exist")
    hunt, timezone = found
    now = clock.now()
    day = pacing.local_day(timezone, now)
    if hunt.status != ACTIVE:
        _finish(hunt_id, run_id, now, 0, touch_scan=False)
        log.info("hunt.not_active", hunt_id=hunt_id, status=hunt.status)
        return {"hunt_id": hunt_id, "day": day.isoformat(), "contacted": 0, "stopped": hunt.status}

    try:
        criteria = parse_criteria(hunt.criteria)
    except InvalidInput as exc:
        # Written around the checks (by hand, a bad migration): refused, not retried.
        raise InvalidInput(f"hunt {hunt_id}: stored {exc}") from None
    # The credits free and the day's count: one statement (credits.available, pacing.get_count).
    free, counted = sql.run_start(hunt.id, day)
    run = _Run(hunt, day, now, compile_template(hunt.message_template), free)
    limit = hunt.daily_pacing_limit
    left = None if limit is None else max(0, limit - counted)
    cursor: tuple[datetime, int] | None = None
    stopped: str | None = None
    finished = False
    while stopped is None:
        usable = run.usable_channels()
        if left is not None and run.contacted >= left:
            stopped = "pacing_limit"
            break
        if not usable:
            stopped = "no_credits"
            break
        wanted = sum(run.free[c] for c in usable)
        if left is not None:
            wanted = min(wanted, left - run.contacted)
        page_size = min(wanted, PAGE_SIZE)
        page = find_matches(
            criteria,
            account_id=hunt.account_id,
            now=now,
            channels=usable,
            limit=page_size,
            after=cursor,
        )
        if not page:
            stopped = "no_more_matching_ads"
            break
        room = None if left is None else left - run.contacted
        # One transaction per page (a day's contacts of a hunt, usually); its messages go to the
        # broker after the commit (a crash before that leaves them queued, for the relay).
        with write_transaction():
            done = contact_page(run, page, room)
            if done.seen:
                last = page[done.seen - 1]
                cursor = (last.published_at, last.id)
            stopped = _stop_after(run, done, len(page) < page_size, left)
            if stopped is not None:
                # The run's end is written with its last page: one transaction, not two.
                sql.finish_run(hunt_id, run_id, now, run.contacted, touch_scan=True)
                finished = True

    if not finished:
        _finish(hunt_id, run_id, now, run.contacted, touch_scan=True)
    result = {
        "hunt_id": hunt_id,
        "day": day.isoformat(),
        "contacted": run.contacted,
        "stopped": stopped,
        "skipped": run.skipped,
    }
    log.info("hunt.run", **result)
    return result


def _stop_after(run: _Run, done: PageResult, short: bool, left: int | None) -> str | None:
    """Why the run stops after a page (None: it goes on with the next page)."""
    if done.at_limit or (left is not None and run.contacted >= left):
        return "pacing_limit"
    if not run.usable_channels():
        return "no_credits"
    return "no_more_matching_ads" if short else None


def _finish(
    hunt_id: int, run_id: int | None, now: datetime, contacted: int, touch_scan: bool
) -> None:
    with write_transaction():
        sql.finish_run(hunt_id, run_id, now, contacted, touch_scan)


def record_failure(hunt_id: int, run_id: int | None, error: str) -> None:
    """A run that will not be retried: keep the reason on its run row, where status shows it."""
    log.error("hunt.run_failed", hunt_id=hunt_id, run_id=run_id, error=error)
    if run_id is None:
        return
    with write_transaction():
        HuntRun.update(error=error[:2_000]).where(
            (HuntRun.id == run_id) & (HuntRun.hunt == hunt_id)
        ).execute()
