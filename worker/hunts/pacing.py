"""Daily pacing (seed 000, made durable): contacts per hunt and per channel per account-local day.

Seed 000 counted in memory for one job run; here each hunt is its own message on any of many
workers, so the count lives in ``hunt_pacing`` and a slot is taken with a conditional
``UPDATE ... SET count = count + 1 WHERE count < limit``: the database serialises concurrent
takers on the row, and the loser sees the winner's count. Called inside the caller's
transaction, a slot is given back by a rollback as well as by :func:`release`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from storage import clock
from storage.db import database
from storage.errors import NotFound
from storage.models.accounts import Account
from storage.models.hunts import ALL_CHANNELS, Hunt, HuntPacing
from worker.hunts.db import writing


def local_day(zone: ZoneInfo | str, when: datetime) -> date:
    """The calendar day `when` falls on in the account's time zone: the day of a daily limit."""
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    return clock.as_utc(when).astimezone(tz).date()


def ensure_rows(hunt_id: int, day: date, channels: Iterable[str]) -> None:
    """Create the day's counters at 0 if missing (a no-op for those that exist)."""
    rows = [(hunt_id, day, name, 0) for name in dict.fromkeys([ALL_CHANNELS, *channels])]
    HuntPacing.insert_many(
        rows, fields=[HuntPacing.hunt, HuntPacing.day, HuntPacing.channel, HuntPacing.count]
    ).on_conflict_ignore().execute()


def _row(hunt_id: int, day: date, channel: str) -> object:
    return (HuntPacing.hunt == hunt_id) & (HuntPacing.day == day) & (HuntPacing.channel == channel)


def take(hunt_id: int, channel: str, day: date, limit: int | None = None) -> bool:
    """Take one slot of `day` for the hunt on `channel`; False when it is at `limit`."""
    with writing():
        if not _take(hunt_id, day, limit):
            # At the limit, or no counter yet (the day's first contact, or one created by another
            # worker after this statement's snapshot): make sure it exists (waiting for a
            # concurrent creator to commit), then try once more against the committed count.
            ensure_rows(hunt_id, day, [channel])
            if not _take(hunt_id, day, limit):
                return False
        counted = (
            HuntPacing.update(count=HuntPacing.count + 1)
            .where(_row(hunt_id, day, channel))
            .execute()
        )
        if not counted:
            ensure_rows(hunt_id, day, [channel])
            HuntPacing.update(count=HuntPacing.count + 1).where(
                _row(hunt_id, day, channel)
            ).execute()
        return True


def increment(hunt_id: int, channel: str, day: date, limit: int | None = None) -> int | None:
    """Take one slot (see :func:`take`); the hunt's new count for the day, None at the limit."""
    with writing():
        if not take(hunt_id, channel, day, limit):
            return None
        return get_count(hunt_id, day)


def _take(hunt_id: int, day: date, limit: int | None) -> bool:
    # The conditional update: concurrent takers queue on the row and re-check `count < limit`
    # against the committed count, so the limit holds whatever the number of workers.
    take = HuntPacing.update(count=HuntPacing.count + 1).where(_row(hunt_id, day, ALL_CHANNELS))
    if limit is not None:
        take = take.where(HuntPacing.count < limit)
    return bool(take.execute())


def _column(field: object) -> str:
    return f'"{field.column_name}"'  # type: ignore[attr-defined]


_TABLE = f'"{HuntPacing._meta.table_name}"'
_KEY = ", ".join(_column(f) for f in (HuntPacing.hunt, HuntPacing.day, HuntPacing.channel))
_COUNT = _column(HuntPacing.count)


def _upsert_sql(rows: int, limited: bool) -> str:
    return _upsert_text(str(database.obj.param), rows, limited)


@lru_cache(maxsize=32)
def _upsert_text(param: str, rows: int, limited: bool) -> str:
    """Add each row's count to its counter, creating it at that count; with `limited`, only
    if the sum stays within a limit (one parameter after the rows). RETURNING gives the rows
    written: a refused addition returns nothing, and (PostgreSQL) still locks the counter."""
    row = "(" + ", ".join([param] * 4) + ")"
    sql = (
        f"INSERT INTO {_TABLE} ({_KEY}, {_COUNT}) VALUES {', '.join([row] * rows)} "
        f"ON CONFLICT ({_KEY}) DO UPDATE SET {_COUNT} = {_TABLE}.{_COUNT} + excluded.{_COUNT}"
    )
    if limited:
        sql += f" WHERE {_TABLE}.{_COUNT} + excluded.{_COUNT} <= {param}"
    return sql + f" RETURNING {_COUNT}"


def take_many(hunt_id: int, day: date, wanted: int, limit: int | None = None) -> int:
    """Take up to `wanted` slots of `day` at once; returns how many (fewer near the limit).

    One statement in the usual case: an upsert of the day's `*` counter that adds `wanted`
    only if the sum stays within `limit`, creating the counter on the day's first contact.
    Refused, it has still locked the counter (PostgreSQL; SQLite runs one writer at a time),
    so the count read next is final until this transaction ends: what is left is taken.
    """
    day_value = HuntPacing.day.db_value(day)
    while wanted > 0:
        if limit is not None:
            wanted = min(wanted, limit)
        params: list[object] = [hunt_id, day_value, ALL_CHANNELS, wanted]
        if limit is not None:
            params.append(limit)
        with writing():
            if database.execute_sql(_upsert_sql(1, limit is not None), params).fetchone():
                return wanted
            assert limit is not None  # an unlimited upsert always writes
            wanted = min(wanted, limit - get_count(hunt_id, day))
    return 0


def record_many(hunt_id: int, day: date, per_channel: dict[str, int], unused: int = 0) -> None:
    """After :func:`take_many`: count the contacts made per channel (one upsert for all the
    channels) and give back the `unused` slots of the `*` counter (refused contacts)."""
    rows = [(hunt_id, HuntPacing.day.db_value(day), c, n) for c, n in per_channel.items() if n]
    with writing():
        if rows:
            params = [value for row in rows for value in row]
            database.execute_sql(_upsert_sql(len(rows), False), params)
        if unused:
            HuntPacing.update(count=HuntPacing.count - unused).where(
                _row(hunt_id, day, ALL_CHANNELS) & (HuntPacing.count >= unused)
            ).execute()


def release(hunt_id: int, channel: str, day: date) -> None:
    """Give a slot back (a failed delivery); never below zero."""
    with writing():
        for name in (ALL_CHANNELS, channel):
            HuntPacing.update(count=HuntPacing.count - 1).where(
                _row(hunt_id, day, name) & (HuntPacing.count > 0)
            ).execute()


def get_count(hunt_id: int, day: date, channel: str = ALL_CHANNELS) -> int:
    """Contacts of the hunt on `day` (all channels, or one); 0 when nothing was counted."""
    param = str(database.obj.param)
    sql = (
        f"SELECT {_COUNT} FROM {_TABLE} WHERE {_column(HuntPacing.hunt)} = {param} "
        f"AND {_column(HuntPacing.day)} = {param} AND {_column(HuntPacing.channel)} = {param}"
    )
    found = database.execute_sql(sql, [hunt_id, HuntPacing.day.db_value(day), channel]).fetchone()
    return int(found[0]) if found else 0


def is_at_limit(hunt_id: int, day: date, limit: int | None) -> bool:
    """True when the day's count has reached `limit`; always False for a null limit."""
    if limit is None:
        return False
    return get_count(hunt_id, day) >= limit


def remaining(hunt_id: int, day: date, limit: int | None) -> int | None:
    """Slots left on `day`; None when there is no limit."""
    if limit is None:
        return None
    return max(0, limit - get_count(hunt_id, day))


def counts_for_day(hunt_id: int, day: date) -> dict[str, int]:
    """Every counter of the day: ``{"*": total, "whatsapp": n, ...}``."""
    query = HuntPacing.select(HuntPacing.channel, HuntPacing.count).where(
        (HuntPacing.hunt == hunt_id) & (HuntPacing.day == day)
    )
    return {row.channel: row.count for row in query}


def today(hunt_id: int) -> tuple[date, dict[str, int]]:
    """The hunt's account-local today and its counters, for display (seed 000's subtask 42.4)."""
    row = (
        Hunt.select(Hunt.id, Account.timezone)
        .join(Account)
        .where(Hunt.id == hunt_id)
        .tuples()
        .first()
    )
    if row is None:
        raise NotFound(f"hunt {hunt_id} does not exist")
    day = local_day(row[1], clock.now())
    counts = counts_for_day(hunt_id, day)
    counts.setdefault(ALL_CHANNELS, 0)
    return day, counts


def today_count(hunt_id: int) -> int:
    """How many contacts the hunt made today, in its account's time zone."""
    return today(hunt_id)[1][ALL_CHANNELS]


def forget_before(day: date) -> int:
    """Delete the counters of days before `day`; returns how many rows went.

    A limit only ever looks at the account's current day, and a late outcome for an older day
    (a failed send's slot given back) finds no row and changes nothing, which is right: that
    day is over.
    """
    with writing():
        return int(HuntPacing.delete().where(HuntPacing.day < day).execute())
