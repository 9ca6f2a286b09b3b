"""The outbox's statements as SQL text, built once per database and shape.

Every send goes through these: its claim in the outbox, its claim for sending, and its outcome.
Profiling a worker showed peewee spending more CPU turning these queries into SQL than the
database spent running them, so they are written out here from the model's own table and column
names, and their values go through the fields' own converters, exactly as peewee would send
them. Each is one statement, atomic on its own; the claims for sending and the outcomes take a
whole window of rows at once (see worker.delivery). Both backends read the same text (SQLite
3.35+ has RETURNING, 3.33+ UPDATE ... FROM); only the placeholder differs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from peewee import Field

from storage.db import database, is_postgres
from storage.models.base import RowReader
from storage.models.consent import Suppression
from storage.models.outbox import CONSENT_SOURCE, QUEUED, SENDING, SUPPRESSED, OutboxMessage

_META = OutboxMessage._meta
_FIELDS = tuple(_META.sorted_fields)
_read_row = RowReader(OutboxMessage, _FIELDS)
# What a new claim writes, in this order.
INSERTED: tuple[Field, ...] = (
    OutboxMessage.idempotency_key,
    OutboxMessage.channel,
    OutboxMessage.recipient,
    OutboxMessage.body,
    OutboxMessage.media_url,
    OutboxMessage.media_mime,
    OutboxMessage.source,
    OutboxMessage.status,
    OutboxMessage.attempts,
    OutboxMessage.created_at,
    OutboxMessage.enqueued_at,
    OutboxMessage.account_id,
    OutboxMessage.address,
    OutboxMessage.sender,
    OutboxMessage.sending_hours,
)
# Where in INSERTED the status is: a claim writes it `suppressed` for a suppressed address.
_STATUS_AT = [f.name for f in INSERTED].index("status")


def _quote(name: str) -> str:
    return f'"{name}"'


_TABLE = _quote(_META.table_name)
_COLUMNS = ", ".join(_quote(f.column_name) for f in _FIELDS)


def _column(field: Any) -> str:
    return _quote(field.column_name)


def _param() -> str:
    return str(database.obj.param)


# Columns tested in a statement that names its rows by id, written so that no index can serve
# the test (`status || ''`) and the rows are found by their primary key. Written plainly,
# PostgreSQL picks an index on status or channel whenever its statistics make the test look
# rarer than the ids (a table just filled by a campaign, before ANALYZE has run) and reads
# every row that passes it to find the ids: 81 ms a claim of 20 rows with 20,000 queued.
_STATUS_BY_ID = f"{_TABLE}.{_quote(OutboxMessage.status.column_name)} || ''"
_CHANNEL_BY_ID = f"{_TABLE}.{_quote(OutboxMessage.channel.column_name)} || ''"


def _row(values: Sequence[Any]) -> OutboxMessage:
    """A model instance from a row of all columns (as peewee's own cursor wrapper makes it)."""
    return _read_row(values)


_SUPPRESSION = _quote(Suppression._meta.table_name)


def suppressed_sql(address: str, account_id: str | None) -> str:
    """SQL that is true when `address` (an SQL expression) is suppressed for `account_id` (an
    SQL expression; None: in any account, for a message sent for no account)."""
    where = f"s.{_column(Suppression.address)} = {address}"
    if account_id is not None:
        where += f" AND s.{_column(Suppression.account_id)} = {account_id}"
    return f"EXISTS (SELECT 1 FROM {_SUPPRESSION} AS s WHERE {where})"


def _status_sql(param: str, *, checked: bool, by_account: bool) -> str:
    """The status a claim writes: `suppressed` for a suppressed address, else the given one
    (parameters: the address, the account when `by_account`, then the status)."""
    if not checked:
        return param
    check = suppressed_sql(param, param if by_account else None)
    return f"CASE WHEN {check} THEN '{SUPPRESSED}' ELSE {param} END"


def claim_values_sql(
    param: str, fields: Sequence[Field], *, checked: bool, by_account: bool
) -> list[str]:
    """The value expressions of a one-row claim of `fields` (INSERTED, or CLAIMED_HERE): a
    placeholder each, but the status, which is `suppressed` for a suppressed address; its
    parameters are :func:`claim_params`. For a caller that writes a claim in a statement of
    its own (the engagement goodbye), so its check is this one."""
    values = [param] * len(fields)
    values[_STATUS_AT] = _status_sql(param, checked=checked, by_account=by_account)
    return values


@lru_cache(maxsize=16)
def _insert_sql(param: str, checked: bool, by_account: bool) -> str:
    values = claim_values_sql(param, INSERTED, checked=checked, by_account=by_account)
    return (
        f"INSERT INTO {_TABLE} ({', '.join(_column(f) for f in INSERTED)}) "
        f"VALUES ({', '.join(values)}) "
        f"ON CONFLICT ({_column(OutboxMessage.idempotency_key)}) DO NOTHING "
        f"RETURNING {_COLUMNS}"
    )


def claim_params(message: NewMessage, values: Sequence[Any], fields: Sequence[Field]) -> list[Any]:
    """A claim's parameters in the order of its text (:func:`claim_values_sql`): the status's
    check takes the address (and the account) just before the status itself."""
    params = [f.db_value(v) for f, v in zip(fields, values, strict=True)]
    if message.checked:
        check = [message.address] + ([message.account_id] if message.account_id else [])
        params[_STATUS_AT:_STATUS_AT] = check
    return params


@dataclass(frozen=True)
class NewMessage:
    """A message to claim, checked (worker.outbox does that): its values for a new row."""

    idempotency_key: str
    channel: str
    recipient: str
    body: str
    media_url: str | None
    media_mime: str | None
    source: str
    account_id: int | None = None
    address: str = ""
    # Who it goes out from (worker.senders.sender_for) and the campaign's hours, if any.
    sender: str | None = None
    sending_hours: str | None = None

    @property
    def checked(self) -> bool:
        """Whether the claim checks the suppression list: every message but the confirmation
        of an address's own stop, the one message it gets after opting out."""
        return self.source != CONSENT_SOURCE

    def queued(self, now: datetime) -> tuple[Any, ...]:
        """Values for the fields of INSERTED, in their order: `queued`, no attempt yet."""
        return (*self._content(), QUEUED, 0, now, now, *self._routing())

    def claimed_here(self, now: datetime) -> tuple[Any, ...]:
        """Values for the fields of CLAIMED_HERE: `sending`, its first attempt, claimed now."""
        return (*self._content(), SENDING, 1, now, now, *self._routing(), now)

    def _routing(self) -> tuple[Any, ...]:
        return (self.account_id, self.address, self.sender, self.sending_hours)

    def _content(self) -> tuple[Any, ...]:
        return (
            self.idempotency_key,
            self.channel,
            self.recipient,
            self.body,
            self.media_url,
            self.media_mime,
            self.source,
        )


# A claim written already taken for sending: by the worker that sends it as soon as the
# claim is committed (worker.delivery.send_here), so no second statement claims it.
CLAIMED_HERE: tuple[Field, ...] = (*INSERTED, OutboxMessage.claimed_at)


def claimed_row(outbox_id: int, values: Sequence[Any]) -> OutboxMessage:
    """The row a CLAIMED_HERE insert wrote, from its values and id (no statement)."""
    data = {f.name: v for f, v in zip(CLAIMED_HERE, values, strict=True)}
    message = OutboxMessage(__no_default__=1, id=outbox_id, **data)
    message._dirty.clear()  # type: ignore[attr-defined]
    return message


def insert_queued(message: NewMessage, now: datetime) -> OutboxMessage | None:
    """Claim the key with a new `queued` row; None when the key was claimed before.

    RETURNING gives back only a row this statement inserted, on both backends (an ignored
    insert returns nothing, where SQLite's last row id would name the previous insert).
    """
    params = claim_params(message, message.queued(now), INSERTED)
    sql = _insert_sql(_param(), message.checked, bool(message.account_id))
    found = database.execute_sql(sql, params).fetchone()
    return None if found is None else _row(found)


@lru_cache(maxsize=64)
def _insert_many_sql(param: str, rows: int, checked: bool, by_account: bool) -> str:
    # What differs per row comes in a VALUES list (cast, so every backend knows its types);
    # what the rows share is a parameter of the SELECT (typed by the column it goes to).
    per_row = _per_row_fields()
    value_row = "(" + ", ".join(f"CAST({param} AS {_cast_type(f)})" for f in per_row) + ")"
    # By name: a peewee field's == builds an SQL expression, so fields are no dict keys.
    column = {f.name: f"v.column{n}" for n, f in enumerate(per_row, start=1)}
    address = column["address"]
    account = column["account_id"] if by_account else None
    selected = []
    for f in INSERTED:
        if f.name == "status":
            check = suppressed_sql(address, account)
            selected.append(
                f"CASE WHEN {check} THEN '{SUPPRESSED}' ELSE {param} END" if checked else param
            )
        else:
            selected.append(column.get(f.name, param))
    return (
        f"INSERT INTO {_TABLE} ({', '.join(_column(f) for f in INSERTED)}) "
        f"SELECT {', '.join(selected)} FROM (VALUES {', '.join([value_row] * rows)}) AS v "
        # WHERE true: SQLite's parser needs it before an upsert clause on INSERT ... SELECT.
        f"WHERE true ON CONFLICT ({_column(OutboxMessage.idempotency_key)}) DO NOTHING "
        f"RETURNING {_COLUMNS}"
    )


# What every row of one queue_messages call shares: the status, the attempts and the times.
_SHARED = (
    OutboxMessage.status,
    OutboxMessage.attempts,
    OutboxMessage.created_at,
    OutboxMessage.enqueued_at,
)


def _cast_type(field: Field) -> str:
    return "BIGINT" if field.name == "account_id" else "TEXT"


def _per_row_fields() -> list[Field]:
    shared = {f.name for f in _SHARED}
    return [f for f in INSERTED if f.name not in shared]


def insert_many_queued(messages: Sequence[NewMessage], now: datetime) -> list[OutboxMessage]:
    """Claim many keys in one statement (messages of one source and one account); returns the
    rows inserted (`queued`, or `suppressed`), none for a key claimed before."""
    if not messages:
        return []
    first = messages[0]
    per_row = _per_row_fields()
    # The SELECT's parameters come first in the text, in INSERTED order: the status, then
    # attempts and the two times; then the VALUES rows.
    params: list[Any] = [QUEUED, 0, *(f.db_value(now) for f in _SHARED[2:])]
    for message in messages:
        row = {f.name: v for f, v in zip(INSERTED, message.queued(now), strict=True)}
        params += [f.db_value(row[f.name]) for f in per_row]
    sql = _insert_many_sql(_param(), len(messages), first.checked, bool(first.account_id))
    return [_row(found) for found in database.execute_sql(sql, params).fetchall()]


@lru_cache(maxsize=4)
def _select_by_key_sql(param: str) -> str:
    return (
        f"SELECT {_COLUMNS} FROM {_TABLE} WHERE {_column(OutboxMessage.idempotency_key)} = {param}"
    )


def get_by_key(idempotency_key: str) -> OutboxMessage | None:
    found = database.execute_sql(_select_by_key_sql(_param()), [idempotency_key]).fetchone()
    return None if found is None else _row(found)


@lru_cache(maxsize=64)
def _claim_sql(param: str, rows: int, channels: int) -> str:
    attempts = _column(OutboxMessage.attempts)
    return (
        f"UPDATE {_TABLE} SET {_column(OutboxMessage.status)} = {param}, "
        f"{_column(OutboxMessage.claimed_at)} = {param}, {attempts} = {attempts} + 1 "
        f"WHERE {_column(OutboxMessage.id)} IN ({', '.join([param] * rows)}) "
        f"AND {_STATUS_BY_ID} = {param} "
        f"AND {_CHANNEL_BY_ID} IN ({', '.join([param] * channels)}) "
        f"AND NOT {_ROW_SUPPRESSED} "
        f"RETURNING {_COLUMNS}"
    )


def _row_suppressed_sql() -> str:
    """True for an outbox row whose address is suppressed in its account (any account for a row
    of none), except the confirmation of a stop (worker.consent), sent after it on purpose."""
    address = f"{_TABLE}.{_column(OutboxMessage.address)}"
    account = f"{_TABLE}.{_column(OutboxMessage.account_id)}"
    where = (
        f"s.{_column(Suppression.address)} = {address} AND "
        f"({account} IS NULL OR s.{_column(Suppression.account_id)} = {account})"
    )
    return (
        f"({_TABLE}.{_column(OutboxMessage.source)} <> '{CONSENT_SOURCE}' AND "
        f"EXISTS (SELECT 1 FROM {_SUPPRESSION} AS s WHERE {where}))"
    )


_ROW_SUPPRESSED = _row_suppressed_sql()


@lru_cache(maxsize=4)
def _is_row_suppressed_sql(param: str) -> str:
    return f"SELECT {_ROW_SUPPRESSED} FROM {_TABLE} WHERE {_column(OutboxMessage.id)} = {param}"


def is_row_suppressed(outbox_id: int) -> bool:
    """Whether the row's address is suppressed now (its claim for sending would be refused)."""
    found = database.execute_sql(_is_row_suppressed_sql(_param()), [outbox_id]).fetchone()
    return bool(found and found[0])


def claim_queued(
    outbox_ids: Sequence[int], now: datetime, channels: Sequence[str]
) -> dict[int, OutboxMessage]:
    """Move the `queued` rows among `outbox_ids` that are on one of `channels`, and whose
    address is not suppressed, to `sending`, and read them, in one statement; returns them by id.

    Only one worker's update matches a row (the others find it `sending`), so a row that comes
    back is this worker's claim; its `attempts` is the claim's token. A row left out is not
    queued, is on a channel that is not in `channels`, or is suppressed now.
    """
    if not channels or not outbox_ids:
        return {}
    params = [
        SENDING,
        OutboxMessage.claimed_at.db_value(now),
        *outbox_ids,
        QUEUED,
        *channels,
    ]
    sql = _claim_sql(_param(), len(outbox_ids), len(channels))
    rows = (_row(found) for found in database.execute_sql(sql, params).fetchall())
    return {row.id: row for row in rows}


# What a claimed row's outcome sets, row by row (the id and the claim's attempt come first).
_OUTCOME_FIELDS: tuple[Field, ...] = (
    OutboxMessage.status,
    OutboxMessage.provider_message_id,
    OutboxMessage.last_error,
)
# Casts that give every backend the same column types for a VALUES list of parameters.
_OUTCOME_TYPES = ("BIGINT", "INTEGER", "TEXT", "TEXT", "TEXT")


@lru_cache(maxsize=64)
def _finish_sql(param: str, rows: int, returning: bool) -> str:
    # UPDATE ... FROM (VALUES ...): every row its own values, in one statement (SQLite 3.33+).
    # The VALUES columns are column1, column2, ... on both backends.
    value_row = "(" + ", ".join(f"CAST({param} AS {t})" for t in _OUTCOME_TYPES) + ")"
    # A value left out (None) keeps what the row holds: a resend keeps the reason it was resent.
    sets = ", ".join(
        f"{_column(field)} = COALESCE(v.column{n}, {_TABLE}.{_column(field)})"
        for n, field in enumerate(_OUTCOME_FIELDS, start=3)
    )
    sql = (
        f"UPDATE {_TABLE} SET {sets}, {_column(OutboxMessage.finished_at)} = {param} "
        f"FROM (VALUES {', '.join([value_row] * rows)}) AS v "
        f"WHERE {_TABLE}.{_column(OutboxMessage.id)} = v.column1 "
        f"AND {_TABLE}.{_column(OutboxMessage.attempts)} = v.column2 "
        f"AND {_STATUS_BY_ID} = {param}"
    )
    if returning:
        sql += " RETURNING " + ", ".join(f"{_TABLE}.{_quote(f.column_name)}" for f in _FIELDS)
    return sql


@dataclass(frozen=True)
class ClaimOutcome:
    """What became of one claimed row: its final status, and the provider's id or the error."""

    outbox_id: int
    attempt: int
    status: str
    provider_message_id: str | None = None
    error: str | None = None


def finish_claimed(
    outcomes: Sequence[ClaimOutcome], now: datetime, *, returning: bool
) -> list[OutboxMessage]:
    """Record the outcomes of this worker's claims (`sending` with their attempt numbers), in
    one statement.

    Conditional on each claim, so a late worker never overwrites another's result. Returns the
    rows as they now are when `returning` (those still held by the claim; none otherwise).
    """
    if not outcomes:
        return []
    # Parameters in the order they appear in the text: SET's, then the VALUES list, then WHERE's.
    params: list[Any] = [OutboxMessage.finished_at.db_value(now)]
    for o in outcomes:
        params += [o.outbox_id, o.attempt, o.status, o.provider_message_id, o.error]
    params.append(SENDING)
    cursor = database.execute_sql(_finish_sql(_param(), len(outcomes), returning), params)
    return [_row(found) for found in cursor.fetchall()] if returning else []


@lru_cache(maxsize=64)
def _requeue_sql(param: str, rows: int) -> str:
    value_row = f"(CAST({param} AS BIGINT), CAST({param} AS INTEGER), CAST({param} AS TEXT))"
    error = _column(OutboxMessage.last_error)
    return (
        f"UPDATE {_TABLE} SET {_column(OutboxMessage.status)} = {param}, "
        f"{_column(OutboxMessage.enqueued_at)} = {param}, "
        f"{error} = COALESCE(v.column3, {_TABLE}.{error}) "
        f"FROM (VALUES {', '.join([value_row] * rows)}) AS v "
        f"WHERE {_TABLE}.{_column(OutboxMessage.id)} = v.column1 "
        f"AND {_TABLE}.{_column(OutboxMessage.attempts)} = v.column2 "
        f"AND {_STATUS_BY_ID} = {param}"
    )


def requeue_claimed(claims: Sequence[tuple[int, int, str | None]], now: datetime) -> int:
    """Give claims back unsent-or-to-retry: (id, attempt, error or None) each, back to `queued`
    so a retry (or the relay) claims them again. Returns how many were still this worker's."""
    if not claims:
        return 0
    # Parameters in the order they appear in the text: SET's, then the VALUES list, then WHERE's.
    params: list[Any] = [QUEUED, OutboxMessage.enqueued_at.db_value(now)]
    for outbox_id, attempt, error in claims:
        params += [outbox_id, attempt, error]
    params.append(SENDING)
    return int(database.execute_sql(_requeue_sql(_param(), len(claims)), params).rowcount)


@lru_cache(maxsize=64)
def _defer_sql(param: str, rows: int) -> str:
    # SQLite keeps times as text (a TIMESTAMP cast would make a number of them).
    stamp = "TIMESTAMP" if is_postgres() else "TEXT"
    value_row = (
        f"(CAST({param} AS BIGINT), CAST({param} AS INTEGER), "
        f"CAST({param} AS {stamp}), CAST({param} AS {stamp}))"
    )
    return (
        f"UPDATE {_TABLE} SET {_column(OutboxMessage.status)} = {param}, "
        f"{_column(OutboxMessage.enqueued_at)} = v.column3, "
        f"{_column(OutboxMessage.not_before)} = v.column4 "
        f"FROM (VALUES {', '.join([value_row] * rows)}) AS v "
        f"WHERE {_TABLE}.{_column(OutboxMessage.id)} = v.column1 "
        f"AND {_TABLE}.{_column(OutboxMessage.attempts)} = v.column2 "
        f"AND {_STATUS_BY_ID} = {param}"
    )


def defer_claimed(deferrals: Sequence[tuple[int, int, datetime, datetime | None]]) -> int:
    """Give claims back to `queued`, due again later: (id, attempt, due, held slot or None)
    each. The row's `enqueued_at` becomes the time its delayed delivery is due, so the relay
    does not enqueue it again before. Returns how many were still this worker's."""
    if not deferrals:
        return 0
    at = OutboxMessage.enqueued_at.db_value
    params: list[Any] = [QUEUED]
    for outbox_id, attempt, due, hold in deferrals:
        params += [outbox_id, attempt, at(due), None if hold is None else at(hold)]
    params.append(SENDING)
    return int(database.execute_sql(_defer_sql(_param(), len(deferrals)), params).rowcount)


@lru_cache(maxsize=64)
def _hold_sql(param: str, rows: int, moving: bool = False) -> str:
    stamp = "TIMESTAMP" if is_postgres() else "TEXT"
    values = [f"CAST({param} AS BIGINT)", f"CAST({param} AS {stamp})"]
    if moving:
        values.append(f"CAST({param} AS {stamp})")
    value_row = f"({', '.join(values)})"
    not_before = _column(OutboxMessage.not_before)
    held_before = "= v.column3" if moving else "IS NULL"
    return (
        f"UPDATE {_TABLE} SET {_column(OutboxMessage.enqueued_at)} = v.column2, "
        f"{not_before} = v.column2 "
        f"FROM (VALUES {', '.join([value_row] * rows)}) AS v "
        f"WHERE {_TABLE}.{_column(OutboxMessage.id)} = v.column1 "
        f"AND {_STATUS_BY_ID} = {param} AND {_TABLE}.{not_before} {held_before} "
        f"RETURNING {_TABLE}.{_column(OutboxMessage.id)}"
    )


def hold_queued(slots: Sequence[tuple[int, datetime]]) -> set[int]:
    """Give `queued` rows that hold no slot the slots handed out to them, (id, slot) each,
    without claiming them: each row is due at its slot (`enqueued_at`, read by the relay).
    Returns the ids of the rows that took theirs (another worker may have claimed or given a
    slot to the others meanwhile)."""
    if not slots:
        return set()
    at = OutboxMessage.enqueued_at.db_value
    params: list[Any] = []
    for outbox_id, slot in slots:
        params += [outbox_id, at(slot)]
    params.append(QUEUED)
    cursor = database.execute_sql(_hold_sql(_param(), len(slots)), params)
    return {int(found[0]) for found in cursor.fetchall()}


def move_held(moves: Sequence[tuple[int, datetime, datetime]]) -> set[int]:
    """Move `queued` rows to new slots, (id, new slot, the slot it held) each, without claiming
    them: a row whose slot changed since (or that was claimed) keeps what it has. Returns the
    ids of the rows moved."""
    if not moves:
        return set()
    at = OutboxMessage.enqueued_at.db_value
    params: list[Any] = []
    for outbox_id, slot, held in moves:
        params += [outbox_id, at(slot), at(held)]
    params.append(QUEUED)
    cursor = database.execute_sql(_hold_sql(_param(), len(moves), moving=True), params)
    return {int(found[0]) for found in cursor.fetchall()}


def accounts_of(outbox_ids: Sequence[int]) -> list[tuple[int, int | None]]:
    """Each row's (id, account id), in the order given, for enqueueing on the accounts' lanes."""
    query = OutboxMessage.select(OutboxMessage.id, OutboxMessage.account_id).where(
        OutboxMessage.id.in_(list(outbox_ids))
    )
    found: dict[int, int | None] = {
        int(row.id): (int(row.account_id) if row.account_id is not None else None) for row in query
    }
    return [(int(i), found.get(int(i))) for i in outbox_ids]
