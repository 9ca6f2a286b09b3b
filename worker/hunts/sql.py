"""The statements a hunt's page, its delivery outcomes and its run's end cost, as SQL text
built once.

Every contact goes through these (a page's or a window's rows together), and every run ends
with one: profiling a worker showed peewee spending more CPU building them than the database spent
running them. They are written out here from the models' own table and column names, and their
values go through the fields' own converters, exactly as peewee would send them. Both backends
read the same text; only the placeholder differs. A page's inserts pass what its rows share
once, not once a row: a short text, with few parameters, that the driver parses once and the
server prepares once, where a row's every value in a long VALUES list was parsed anew each page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from peewee import CharField, Field, TextField

from storage.db import database
from storage.models.hunts import (
    ALL_CHANNELS,
    CONTACT_QUEUED,
    CONTACTE,
    NOUVEAU,
    ContactedAd,
    Hunt,
    HuntChannelCredit,
    HuntPacing,
    HuntRun,
    Lead,
)


def _quote(name: str) -> str:
    return f'"{name}"'


def _column(field: Field) -> str:
    return _quote(field.column_name)


def _table(field: Field) -> str:
    return _quote(field.model._meta.table_name)


def _param() -> str:
    return str(database.obj.param)


def _cast(field: Field) -> str:
    return "TEXT" if isinstance(field, CharField | TextField) else "BIGINT"


@dataclass(frozen=True)
class _Insert:
    """A page's insert: the `shared` fields' values once (parameters of the SELECT, first),
    each row's values for `per_row` in a VALUES list (cast, so both backends know their
    types), then `suffix`."""

    shared: tuple[Field, ...]
    per_row: tuple[Field, ...]
    suffix: str = ""


_INSERTS = {
    "lead": _Insert(
        (Lead.account, Lead.hunt, Lead.stage, Lead.position, Lead.created_at, Lead.updated_at),
        (Lead.ad,),
        f" ON CONFLICT DO NOTHING RETURNING {_column(Lead.ad)}",
    ),
    "contact": _Insert(
        (ContactedAd.hunt, ContactedAd.day, ContactedAd.status, ContactedAd.contacted_at),
        (ContactedAd.ad, ContactedAd.channel, ContactedAd.outbox_message),
    ),
}


@lru_cache(maxsize=64)
def _insert_sql(param: str, kind: str, rows: int) -> str:
    insert = _INSERTS[kind]
    value_row = "(" + ", ".join(f"CAST({param} AS {_cast(f)})" for f in insert.per_row) + ")"
    selected = [param] * len(insert.shared)
    selected += [f"v.column{n}" for n in range(1, len(insert.per_row) + 1)]
    columns = ", ".join(_column(f) for f in (*insert.shared, *insert.per_row))
    # WHERE true: SQLite's parser needs it before an upsert clause on INSERT ... SELECT.
    return (
        f"INSERT INTO {_table(insert.per_row[0])} ({columns}) SELECT {', '.join(selected)} "
        f"FROM (VALUES {', '.join([value_row] * rows)}) AS v WHERE true{insert.suffix}"
    )


def insert_leads(account_id: int, hunt_id: int, ad_ids: Sequence[int], now: datetime) -> set[int]:
    """New leads (`nouveau`) of the hunt for `ad_ids`, in that order, in one statement; returns
    the ads that became one (the others already were a lead of the account)."""
    at = Lead.created_at.db_value(now)
    params: list[Any] = [account_id, hunt_id, NOUVEAU, 0, at, at, *ad_ids]
    text = _insert_sql(_param(), "lead", len(ad_ids))
    return {int(found[0]) for found in database.execute_sql(text, params).fetchall()}


def insert_contacts(
    hunt_id: int, day: date, now: datetime, contacts: Sequence[tuple[int, str, int]]
) -> None:
    """The hunt's contacted ads, `queued`, one (ad id, channel, outbox id) each, in one
    statement."""
    if not contacts:
        return
    params: list[Any] = [
        hunt_id,
        ContactedAd.day.db_value(day),
        CONTACT_QUEUED,
        ContactedAd.contacted_at.db_value(now),
    ]
    for contact in contacts:
        params += contact
    database.execute_sql(_insert_sql(_param(), "contact", len(contacts)), params)


@dataclass(frozen=True)
class Settled:
    """A contact whose message's outcome was just recorded on it."""

    outbox_id: int
    hunt_id: int
    ad_id: int
    channel: str
    day: date


@lru_cache(maxsize=64)
def _settle_sql(param: str, rows: int) -> str:
    table = _table(ContactedAd.id)
    value_row = f"(CAST({param} AS BIGINT), CAST({param} AS TEXT))"
    outbox = _column(ContactedAd.outbox_message)
    returned = (
        ContactedAd.outbox_message,
        ContactedAd.hunt,
        ContactedAd.ad,
        ContactedAd.channel,
        ContactedAd.day,
    )
    return (
        f"UPDATE {table} SET {_column(ContactedAd.status)} = v.column2, "
        f"{_column(ContactedAd.finished_at)} = {param} "
        f"FROM (VALUES {', '.join([value_row] * rows)}) AS v "
        f"WHERE {table}.{outbox} = v.column1 AND {table}.{_column(ContactedAd.status)} = {param} "
        f"RETURNING {', '.join(f'{table}.{_column(f)}' for f in returned)}"
    )


def settle_contacts(outcomes: Sequence[tuple[int, str]], now: datetime) -> list[Settled]:
    """Record each (outbox id, contact status) on its contact, in one statement, if the contact
    is still `queued` (an outcome is applied once, however often it is reported); returns the
    contacts changed."""
    if not outcomes:
        return []
    params: list[Any] = [ContactedAd.finished_at.db_value(now)]
    for outbox_id, status in outcomes:
        params += [outbox_id, status]
    params.append(CONTACT_QUEUED)
    cursor = database.execute_sql(_settle_sql(_param(), len(outcomes)), params)
    day = ContactedAd.day.python_value
    return [
        Settled(int(outbox_id), int(hunt_id), int(ad_id), str(channel), day(on))
        for outbox_id, hunt_id, ad_id, channel, on in cursor.fetchall()
    ]


@lru_cache(maxsize=64)
def _leads_sql(param: str, ads: int) -> str:
    return (
        f"UPDATE {_table(Lead.id)} SET {_column(Lead.stage)} = {param}, "
        f"{_column(Lead.updated_at)} = {param} "
        f"WHERE {_column(Lead.hunt)} = {param} "
        f"AND {_column(Lead.ad)} IN ({', '.join([param] * ads)}) "
        f"AND {_column(Lead.stage)} = {param}"
    )


def mark_contacted(hunt_id: int, ad_ids: Sequence[int], now: datetime) -> int:
    """The hunt's leads of `ad_ids` move from `nouveau` to `contacte`, in one statement;
    returns how many moved."""
    if not ad_ids:
        return 0
    params = [CONTACTE, Lead.updated_at.db_value(now), hunt_id, *ad_ids, NOUVEAU]
    return int(database.execute_sql(_leads_sql(_param(), len(ad_ids)), params).rowcount)


@lru_cache(maxsize=4)
def _settle_credits_sql(param: str) -> str:
    C = HuntChannelCredit
    reserved, consumed = _column(C.reserved), _column(C.consumed)
    return (
        f"UPDATE {_table(C.id)} SET {reserved} = {reserved} - {param}, "
        f"{consumed} = {consumed} + {param} "
        f"WHERE {_column(C.hunt)} = {param} AND {_column(C.channel)} = {param} "
        f"AND {reserved} >= {param}"
    )


def settle_credits(hunt_id: int, channel: str, used: int, freed: int) -> bool:
    """`used` reservations become consumed credits and `freed` ones are free again, in one
    statement, only if that many are reserved; False (nothing changed) otherwise."""
    total = used + freed
    params = [total, used, hunt_id, channel, total]
    return bool(database.execute_sql(_settle_credits_sql(_param()), params).rowcount)


@lru_cache(maxsize=4)
def _run_start_sql(param: str) -> str:
    C, P = HuntChannelCredit, HuntPacing
    free = f"{_column(C.allocated)} - {_column(C.reserved)} - {_column(C.consumed)}"
    return (
        f"SELECT {_column(C.channel)}, {free} FROM {_table(C.id)} "
        f"WHERE {_column(C.hunt)} = {param} "
        f"UNION ALL SELECT NULL, {_column(P.count)} FROM {_table(P.id)} "
        f"WHERE {_column(P.hunt)} = {param} AND {_column(P.day)} = {param} "
        f"AND {_column(P.channel)} = {param}"
    )


def run_start(hunt_id: int, day: date) -> tuple[dict[str, int], int]:
    """What a run starts from, in one statement: the credits still free per channel
    (worker.hunts.credits.available) and the contacts counted on `day`
    (worker.hunts.pacing.get_count)."""
    params = [hunt_id, hunt_id, HuntPacing.day.db_value(day), ALL_CHANNELS]
    free: dict[str, int] = {}
    counted = 0
    for channel, value in database.execute_sql(_run_start_sql(_param()), params).fetchall():
        if channel is None:
            counted = int(value)
        else:
            free[str(channel)] = max(0, int(value))
    return free, counted


@lru_cache(maxsize=4)
def _scanned_sql(param: str) -> str:
    return (
        f"UPDATE {_table(Hunt.id)} SET {_column(Hunt.last_scan_at)} = {param} "
        f"WHERE {_column(Hunt.id)} = {param}"
    )


@lru_cache(maxsize=4)
def _run_finished_sql(param: str) -> str:
    contacted = _column(HuntRun.contacted)
    return (
        f"UPDATE {_table(HuntRun.id)} SET {_column(HuntRun.finished_at)} = {param}, "
        f"{contacted} = COALESCE({contacted}, 0) + {param} "
        f"WHERE {_column(HuntRun.id)} = {param} AND {_column(HuntRun.hunt)} = {param}"
    )


def finish_run(
    hunt_id: int, run_id: int | None, now: datetime, contacted: int, touch_scan: bool
) -> None:
    """The hunt was scanned now (`touch_scan`) and its run row, if any, is finished with
    `contacted` more contacts: a statement each, in the caller's transaction."""
    param = _param()
    if touch_scan:
        database.execute_sql(_scanned_sql(param), [Hunt.last_scan_at.db_value(now), hunt_id])
    if run_id is not None:
        params = [HuntRun.finished_at.db_value(now), contacted, run_id, hunt_id]
        database.execute_sql(_run_finished_sql(param), params)
