"""Importing an account's members from a CSV file: the users the daily engagement run looks after.

The header row names the columns (any order, any letter case): ``external_id`` and ``name`` are
needed; ``email``, ``phone``, ``whatsapp_id``, ``group_id``, ``preferred_destination``,
``locale``, ``opt_out`` and ``last_activity`` (ISO 8601) are optional. ``external_id`` is the
product's own id of the user: a user already in the account with that id is updated, so the same
file imported twice adds no one twice. A column left out of the header leaves that field of
existing users as it is.

The file is streamed and written a chunk of rows per transaction (upserts on the account and
external id), so memory stays flat whatever the file's size. Bad rows are reported with their
line and skipped. A file that cannot be read to the end (not UTF-8, malformed CSV) stops there:
the chunks before it stay imported, the report says where it stopped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage import clock
from storage.db import database, is_postgres, write_transaction
from storage.errors import InvalidInput
from storage.models.accounts import User
from storage.models.engagement import (
    ACTIVE,
    DESTINATIONS,
    GROUP,
    INDIVIDUAL,
    EngagementState,
    UserProfile,
)
from worker.accounts import MAX_NAME, require_account
from worker.addresses import normalise_email, normalise_phone
from worker.csv_records import records
from worker.upsert_sql import changes, current, excluded, matching, upsert

# Header names accepted for each field (compared lower-cased, spaces and dashes as underscores).
COLUMNS = {
    "external_id": "external_id",
    "id": "external_id",
    "name": "name",
    "email": "email",
    "phone": "phone",
    "whatsapp_id": "whatsapp_id",
    "whatsapp": "whatsapp_id",
    "group_id": "group_id",
    "preferred_destination": "preferred_destination",
    "destination": "preferred_destination",
    "locale": "locale",
    "opt_out": "opt_out",
    "last_activity": "last_activity",
    "last_activity_at": "last_activity",
}
REQUIRED = ("external_id", "name")
EXPECTED = (
    "external_id, name, email, phone, whatsapp_id, group_id, preferred_destination, locale, "
    "opt_out, last_activity"
)
# Rows per transaction: three upserts of this many rows each (well under SQLite's 32,766
# parameters per statement).
IMPORT_CHUNK = 2_000
# As the columns hold.
MAX_EXTERNAL_ID = 128
MAX_JID = 128
MAX_LOCALE = 16
# A member's profile locale when the file gives none.
DEFAULT_LOCALE = "en"
_TRUE = frozenset({"1", "true", "yes", "y", "on"})
_FALSE = frozenset({"", "0", "false", "no", "n", "off"})
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass
class UsersImportReport:
    account_id: int
    created: int = 0
    updated: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    # Set when the file could not be read to the end: why, and from which line nothing was kept.
    stopped: str | None = None

    @property
    def imported(self) -> int:
        return self.created + self.updated


@dataclass(frozen=True)
class _Row:
    line: int
    external_id: str
    values: dict[str, Any]


def _header(cells: list[str]) -> list[str]:
    names: list[str] = []
    for cell in cells:
        key = re.sub(r"[\s-]+", "_", cell.strip().lower())
        if key not in COLUMNS:
            raise InvalidInput(
                f"line 1: unknown column {cell.strip()[:40]!r} (expected {EXPECTED})"
            )
        if COLUMNS[key] in names:
            raise InvalidInput(f"line 1: column {cell.strip()!r} appears twice")
        names.append(COLUMNS[key])
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise InvalidInput(f"line 1: the header needs a column {' and '.join(missing)}")
    return names


def parse_activity(raw: str) -> datetime | None:
    """ISO 8601; a time without an offset is UTC, a bare date is its midnight UTC."""
    text = raw.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"last_activity {text[:40]!r} is not an ISO 8601 date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _opt_out(raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidInput(f"opt_out {raw.strip()[:20]!r} is not yes or no")


def _jid(raw: str, what: str) -> str | None:
    text = raw.strip()
    if len(text) > MAX_JID:
        raise InvalidInput(f"{what} is longer than {MAX_JID} characters")
    return text or None


def _parse(line: int, names: list[str], cells: list[str]) -> _Row:
    if len(cells) != len(names):
        raise InvalidInput(f"expected {len(names)} fields, found {len(cells)}")
    if any("\x00" in cell for cell in cells):
        # The csv module lets NUL through; PostgreSQL refuses it in text.
        raise InvalidInput("contains a NUL character")
    raw = dict(zip(names, cells, strict=True))
    external_id = raw["external_id"].strip()
    if not external_id or len(external_id) > MAX_EXTERNAL_ID:
        raise InvalidInput(f"external_id must be 1 to {MAX_EXTERNAL_ID} characters")
    name = raw["name"].strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"name must be 1 to {MAX_NAME} characters")
    values: dict[str, Any] = {"name": name}
    if "email" in raw:
        values["email"] = normalise_email(raw["email"])
    if "phone" in raw:
        values["phone"] = normalise_phone(raw["phone"])
    if "whatsapp_id" in raw:
        values["whatsapp_jid"] = _jid(raw["whatsapp_id"], "whatsapp_id")
    if "group_id" in raw:
        values["group_jid"] = _jid(raw["group_id"], "group_id")
    if "preferred_destination" in raw:
        destination = raw["preferred_destination"].strip().lower() or INDIVIDUAL
        if destination not in DESTINATIONS:
            raise InvalidInput(
                f"preferred_destination must be one of {', '.join(DESTINATIONS)}, "
                f"not {destination[:20]!r}"
            )
        if destination == GROUP and not values.get("group_jid"):
            raise InvalidInput("preferred_destination is group but the row has no group_id")
        values["preferred_destination"] = destination
    if "locale" in raw:
        locale = raw["locale"].strip() or DEFAULT_LOCALE
        if len(locale) > MAX_LOCALE or not _LOCALE.match(locale):
            raise InvalidInput(f"locale {locale[:20]!r} is not a language tag (e.g. fr, pt-BR)")
        values["locale"] = locale
    if "opt_out" in raw:
        values["reengagement_opt_out"] = _opt_out(raw["opt_out"])
    if "last_activity" in raw:
        values["last_activity_at"] = parse_activity(raw["last_activity"])
    return _Row(line, external_id, values)


# The stored field each column fills, where the names differ.
_FIELD_OF = {
    "whatsapp_id": "whatsapp_jid",
    "group_id": "group_jid",
    "opt_out": "reengagement_opt_out",
    "last_activity": "last_activity_at",
}
_USER_FIELDS = ("name", "email", "phone")
# A new member's profile where the file has no column for a field.
_PROFILE_DEFAULTS: dict[str, Any] = {
    "preferred_destination": INDIVIDUAL,
    "whatsapp_jid": None,
    "group_jid": None,
    "locale": DEFAULT_LOCALE,
    "reengagement_opt_out": False,
}
_PROFILE_FIELDS = tuple(_PROFILE_DEFAULTS)
_USER_COLUMNS = (User.name, User.email, User.phone)
_PROFILE_COLUMNS = tuple(getattr(UserProfile, f) for f in _PROFILE_FIELDS)


class _Writer:
    """Upserts one chunk of rows in one transaction: users, then profiles, then states."""

    def __init__(self, account_id: int, names: list[str], report: UsersImportReport) -> None:
        self.account_id = account_id
        self.report = report
        present = {_FIELD_OF.get(name, name) for name in names}
        # New rows get every field (the default where the file has no column); only the
        # columns the file has are written over existing rows.
        self.user_updates = [getattr(User, f) for f in _USER_FIELDS if f in present]
        self.profile_updates = [getattr(UserProfile, f) for f in _PROFILE_FIELDS if f in present]
        self.has_activity = "last_activity_at" in present

    def write(self, rows: list[_Row]) -> None:
        now = clock.now()
        with write_transaction():
            ids, created = self._users(rows, now)
            self._profiles(rows, ids, now)
            if self.has_activity:
                self._states(rows, ids, now)
        self.report.created += created
        self.report.updated += len(rows) - created

    def _users(self, rows: list[_Row], now: datetime) -> tuple[dict[str, int], int]:
        """Upserts the chunk's users: {external id: user id} and how many were new."""
        postgres = is_postgres()
        known: dict[Any, Any] = {}
        if not postgres:
            # SQLite has no way to tell an upsert's inserted rows from its updated ones: the
            # known ones are looked up first (by the unique index; SQLite plans without
            # statistics). On PostgreSQL that lookup, planned from statistics autovacuum had
            # not yet refreshed after the chunks before it, scanned the whole account.
            known = matching(
                User.account,
                self.account_id,
                User.external_id,
                [row.external_id for row in rows],
                User.id,
            )
        returned = upsert(
            User,
            [User.account, User.external_id, User.created_at, *_USER_COLUMNS],
            [
                [
                    self.account_id,
                    row.external_id,
                    now,
                    *(row.values.get(f.name) for f in _USER_COLUMNS),
                ]
                for row in rows
            ],
            conflict=[User.account, User.external_id],
            updates=[(f, excluded(f)) for f in self.user_updates],
            returning=[User.external_id, User.id],
            flag_inserted=postgres,
        )
        ids = {external_id: user_id for external_id, user_id, *_ in returned}
        if postgres:
            return ids, sum(1 for *_, inserted in returned if inserted)
        return ids, len(rows) - len(known)

    def _profiles(self, rows: list[_Row], ids: dict[str, int], now: datetime) -> None:
        upsert(
            UserProfile,
            [UserProfile.user, UserProfile.created_at, *_PROFILE_COLUMNS],
            [
                [
                    ids[row.external_id],
                    now,
                    *(row.values.get(f.name, _PROFILE_DEFAULTS[f.name]) for f in _PROFILE_COLUMNS),
                ]
                for row in rows
            ],
            conflict=[UserProfile.user],
            updates=[(f, excluded(f)) for f in self.profile_updates],
            update_when=changes(self.profile_updates),
        )

    def _states(self, rows: list[_Row], ids: dict[str, int], now: datetime) -> None:
        """New members start active; a known one's last activity only ever moves forward (the
        engagement run may have seen a later one than the product's export). A row whose activity
        does not move is not written; one that moves has its version bumped, so an engagement
        decision taken on the earlier activity does not apply."""
        last = EngagementState.last_activity_at
        version = EngagementState.version
        upsert(
            EngagementState,
            [
                EngagementState.user,
                EngagementState.state,
                last,
                EngagementState.updated_at,
                version,
            ],
            [
                [ids[row.external_id], ACTIVE, row.values["last_activity_at"], now, 0]
                for row in rows
                if row.values["last_activity_at"] is not None
            ],
            conflict=[EngagementState.user],
            updates=[
                (last, excluded(last)),
                (EngagementState.updated_at, excluded(EngagementState.updated_at)),
                (version, f"{current(version)} + 1"),
            ],
            update_when=f"{current(last)} IS NULL OR {excluded(last)} > {current(last)}",
        )


def import_users(account_id: int, path: str | Path, chunk: int | None = None) -> UsersImportReport:
    """Create or update the account's members from the file; bad rows come back with their
    lines, and `stopped` says where a file that could not be read to the end stopped."""
    chunk = chunk or IMPORT_CHUNK
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"cannot read {path.name}: no such file")
    require_account(account_id)
    rows = records(path)
    first = next(rows, None)
    if first is None:
        raise InvalidInput(f"{path.name} is empty (a header row is needed)")
    names = _header(first[1])
    report = UsersImportReport(account_id=account_id)
    writer = _Pipeline(_Writer(account_id, names, report))
    try:
        _read(rows, names, chunk, report, writer)
    finally:
        writer.close()
    return report


def _read(
    rows: Iterator[tuple[int, list[str]]],
    names: list[str],
    chunk: int,
    report: UsersImportReport,
    writer: _Pipeline,
) -> None:
    seen: dict[str, int] = {}
    pending: list[_Row] = []
    try:
        for line, cells in rows:
            try:
                row = _parse(line, names, cells)
            except InvalidInput as exc:
                report.bad_rows.append(BadRow(line, str(exc)))
                continue
            if row.external_id in seen:
                report.bad_rows.append(
                    BadRow(line, f"same external_id as line {seen[row.external_id]}")
                )
                continue
            seen[row.external_id] = line
            pending.append(row)
            if len(pending) >= chunk:
                writer.write(pending)
                pending = []
    except InvalidInput as exc:
        kept = f"from line {pending[0].line} on" if pending else "after it"
        report.stopped = f"{exc}; nothing imported {kept}"
        return
    if pending:
        writer.write(pending)


class _Pipeline:
    """Writes each chunk in a thread of its own while the next one is read and checked.

    The driver gives up the GIL while the database works, so reading the file no longer waits
    for it: on PostgreSQL the server's share was about half of a 100,000-row import. One chunk
    is written at a time, in order, and a failed write is raised at the next hand-over, so the
    chunks before it stay committed and none after it is written.
    """

    def __init__(self, writer: _Writer) -> None:
        self._writer = writer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="users-import")
        self._in_flight: Future[None] | None = None

    def write(self, rows: list[_Row]) -> None:
        self.wait()
        self._in_flight = self._pool.submit(self._write, rows)

    def wait(self) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)

    def _write(self, rows: list[_Row]) -> None:
        with database.connection_context():
            self._writer.write(rows)
