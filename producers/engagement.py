"""The daily engagement sweep (seed 004): find due users, enqueue one message per user and check.

Each check is one query streamed by keyset pages on the index it filters by, so memory stays flat
whatever the number of users. Calling it twice for the same day is safe: the second run finds
the users the first one moved no longer due, and a message of both runs for the same user ends
in one transition and one goodbye (see :mod:`worker.engagement.process`).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

from peewee import JOIN, Tuple, Value, fn

from storage.clock import as_utc
from storage.db import database
from storage.models.engagement import EngagementState, UserProfile
from worker.consent.users import OPTED_OUT as OPTED_OUT_CAUSE
from worker.consent.users import suppress_users
from worker.engagement import runs
from worker.engagement.checks import CHECKS, Check
from worker.engagement.process import OPTED_OUT
from worker.engagement.state_machine import Thresholds
from worker.logging import get_logger

log = get_logger("outreach.engagement")

# Users read, and messages enqueued, per page of the sweep.
PAGE_SIZE = 1000

DueUser = tuple[int, bool]  # (user id, opted out of re-engagement)


def due_users(check: Check, as_of: datetime, page_size: int = PAGE_SIZE) -> Iterator[list[DueUser]]:
    """Pages of the users due for `check` at `as_of`, in the order of the check's index."""
    column = check.column
    opted_out = (
        fn.COALESCE(UserProfile.reengagement_opt_out, False)
        if check.sends_goodbye
        else Value(False)
    )
    query = EngagementState.select(EngagementState.user, column, opted_out).where(
        check.due_condition(as_of, Thresholds.from_settings())
    )
    if check.sends_goodbye:
        query = query.join(
            UserProfile, JOIN.LEFT_OUTER, on=(UserProfile.user == EngagementState.user)
        )
    query = query.order_by(column, EngagementState.user).limit(page_size)
    # The pages after the first are one statement with the last row read as its bound: its SQL
    # is built once (peewee took longer building it than PostgreSQL took answering it), and the
    # rows are read off the cursor as plain tuples, values as the database gives them.
    first_sql, first_params = query.sql()
    next_sql, next_params = query.where(
        Tuple(column, EngagementState.user)
        > Tuple(Value(_BOUND_DUE, converter=column.db_value), _BOUND_USER)
    ).sql()
    due_at = next_params.index(column.db_value(_BOUND_DUE))
    user_at = next_params.index(_BOUND_USER)
    sql, params = first_sql, first_params
    while True:
        rows = cast(list[tuple[int, Any, bool]], database.execute_sql(sql, params).fetchall())
        if not rows:
            return
        yield [(user_id, bool(out)) for user_id, _, out in rows]
        if len(rows) < page_size:
            return
        last_user, last_due, _ = rows[-1]
        sql, params = next_sql, list(next_params)
        params[due_at] = last_due  # as the database gave it: the bound is its own value
        params[user_at] = last_user


# Stand-ins for the last row of a page, found again among the parameters of the next page's
# statement: values no real row has.
_BOUND_DUE = datetime(1901, 2, 3, 4, 5, 6, 789, tzinfo=UTC)
_BOUND_USER = -918273645


def _enqueue(run_id: int, user_ids: list[int], check: Check) -> None:
    from worker.actors.engagement import process_engagement_user
    from worker.enqueue import enqueue_calls

    enqueue_calls(process_engagement_user, ((run_id, user_id, check.name) for user_id in user_ids))


def run_daily(fire_time: datetime) -> dict[str, Any]:
    """Start the daily run for `fire_time`: the three checks, one message per due user.

    Returns the run id and what the sweep did; the work itself is done by the workers, and
    :func:`worker.engagement.runs.job_result` adds it up.
    """
    fire_time = as_utc(fire_time)
    enqueued: dict[str, int] = {check.name: 0 for check in CHECKS}
    opted_out = 0
    # A page is enqueued in a thread of its own while the next one is read: the database's
    # round trip and Redis's overlap. One page at a time is in flight, so memory stays flat, and
    # a failed enqueue stops the sweep at the next page.
    with database.connection_context(), ThreadPoolExecutor(1) as enqueuer:
        run = runs.start_run(fire_time)
        in_flight: Future[None] | None = None
        for check in CHECKS:
            for page in due_users(check, fire_time, PAGE_SIZE):
                to_enqueue = [user_id for user_id, out in page if not out]
                skipped = [user_id for user_id, out in page if out]
                if skipped:
                    opted_out += runs.record_skipped(run.id, skipped, check.name, OPTED_OUT)
                    # However the flag was set (an import, the product's own database), the
                    # run that meets it suppresses the user's addresses: consent wins.
                    suppress_users(skipped, OPTED_OUT_CAUSE)
                if to_enqueue:
                    if in_flight is not None:
                        in_flight.result()
                    in_flight = enqueuer.submit(_enqueue, run.id, to_enqueue, check)
                    enqueued[check.name] += len(to_enqueue)
        if in_flight is not None:
            in_flight.result()
        total = sum(enqueued.values())
        log.info(
            "engagement.run.enqueued",
            run_id=run.id,
            enqueued=total,
            skipped_opted_out=opted_out,
            **{f"enqueued_{name}": n for name, n in enqueued.items()},
        )
        if not runs.close_sweep(run.id, total, opted_out):
            from worker.actors.engagement import watch_engagement_run

            watch_engagement_run.send(run.id)
    return {
        "run_id": run.id,
        "fire_time": fire_time.isoformat(),
        "enqueued": total,
        "enqueued_by_check": enqueued,
        "skipped_opted_out": opted_out,
    }
