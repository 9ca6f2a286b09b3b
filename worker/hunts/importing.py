"""Importing the scraper's ads from JSON Lines: streamed, upserted, all or nothing.

One ad per line (see docs/operating.md, "Importing ads", for the format). The file is read line
by line and written in batches with ``INSERT ... ON CONFLICT (source, external_id) DO UPDATE``,
so memory stays flat whatever the size. Invalid lines are reported with their line numbers and
skipped; the whole import is one transaction, so a crash or a refused strict import leaves the
ads as they were.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from storage import clock
from storage.db import database, is_postgres, write_transaction
from storage.errors import InvalidInput
from storage.models.hunts import Ad
from worker.addresses import normalise_email, normalise_phone

# Lines written at a time: memory stays at one batch of rows whatever the file's size.
BATCH_SIZE = 10_000
# Error lines kept for the report; the rest are only counted (a broken file must not fill memory).
MAX_REPORTED_ERRORS = 100

_POSTAL_CODE = re.compile(r"^\d{5}$")
# The largest price the price column holds (a 32-bit integer on PostgreSQL).
MAX_PRICE = 2**31 - 1

# Columns written by the import (and updated on conflict), in row order.
_FIELDS = (
    Ad.source,
    Ad.external_id,
    Ad.title,
    Ad.price,
    Ad.postal_code,
    Ad.city,
    Ad.category,
    Ad.sub_type,
    Ad.brand,
    Ad.owner_name,
    Ad.owner_phone,
    Ad.owner_email,
    Ad.url,
    Ad.published_at,
    Ad.imported_at,
    Ad.updated_at,
)
# (Compared by name: a peewee field's `==` builds an SQL expression.)
_UPDATED_ON_CONFLICT = [
    f for f in _FIELDS if f.name not in ("source", "external_id", "imported_at")
]


class BadRecord(ValueError):
    """One line that cannot be imported; the message names the field."""


@dataclass
class ImportReport:
    lines: int = 0
    written: int = 0
    invalid: int = 0
    errors: list[str] = field(default_factory=list)

    def add_error(self, line_number: int, message: str) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(f"line {line_number}: {message}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "written": self.written,
            "invalid": self.invalid,
            "errors": self.errors,
            "errors_not_shown": self.invalid - len(self.errors),
        }


def _text(record: dict[str, Any], key: str, max_length: int, required: bool = True) -> str | None:
    value = record.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and key == "external_id":
        value = str(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRecord(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise BadRecord(f"{key} must be a string")
    if "\x00" in value:
        raise BadRecord(f"{key} contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate such as "\ud800": no database stores it
            raise BadRecord(f"{key} is not valid Unicode text") from None
    value = value.strip()
    if len(value) > max_length:
        raise BadRecord(f"{key} is longer than {max_length} characters")
    return value


def _object(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    if not isinstance(value, dict):
        raise BadRecord(f"{key} must be an object")
    return value


def _price(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRecord(f"price must be a whole number of euros, 0 or more (got {value!r})")
    if value > MAX_PRICE:
        raise BadRecord(f"price must be at most {MAX_PRICE} euros (got {value})")
    return value


def _published_at(value: Any) -> datetime:
    """Naive UTC, as every timestamp is stored (the rows bypass the model's field conversion)."""
    if not isinstance(value, str):
        raise BadRecord("published_at must be an ISO date-time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return clock.as_utc(moment).replace(tzinfo=None)
    except (ValueError, OverflowError):  # overflow: year 1 with an offset east of UTC
        raise BadRecord(f"published_at {value[:40]!r} is not an ISO date-time") from None


def parse_ad(record: Any, now: datetime) -> tuple[Any, ...]:
    """One JSON record as a row of `_FIELDS`; raises BadRecord naming the problem."""
    if not isinstance(record, dict):
        raise BadRecord("an ad must be a JSON object")
    location = _object(record, "location")
    postal_code = location.get("postal_code")
    if not isinstance(postal_code, str) or not _POSTAL_CODE.match(postal_code.strip()):
        raise BadRecord(f"location.postal_code must be 5 digits (got {postal_code!r})")
    owner = _object(record, "owner")
    phone = _text(owner, "phone", 40, required=False)
    try:
        phone = normalise_phone(phone)
    except InvalidInput:
        raise BadRecord("owner.phone is not a phone number") from None
    try:
        email = normalise_email(_text(owner, "email", 320, required=False))
    except InvalidInput:
        raise BadRecord("owner.email is not an email address") from None
    if phone is None and email is None:
        raise BadRecord("owner needs a phone or an email")
    url = _text(record, "url", 2_000)
    assert url is not None
    if not url.startswith(("http://", "https://")):
        raise BadRecord("url must start with http:// or https://")
    sub_type = _text(record, "sub_type", 64, required=False)
    brand = _text(record, "brand", 64, required=False)
    return (
        _text(record, "source", 32),
        _text(record, "external_id", 128),
        _text(record, "title", 500),
        _price(record.get("price")),
        postal_code.strip(),
        _text(location, "city", 200, required=False),
        _text(record, "category", 64, required=False),
        sub_type.lower() if sub_type else None,
        brand.lower() if brand else None,
        _text(owner, "name", 200, required=False),
        phone,
        email,
        url,
        _published_at(record.get("published_at")),
        now,
        now,
    )


def _records(lines: Iterable[bytes], report: ImportReport) -> Iterator[tuple[Any, ...]]:
    now = clock.now().replace(tzinfo=None)
    for number, raw in enumerate(lines, start=1):
        report.lines = number
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except UnicodeDecodeError:
            report.add_error(number, "not UTF-8 text")
            continue
        except json.JSONDecodeError as exc:
            report.add_error(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            report.add_error(number, "not valid JSON (nested too deeply)")
            continue
        except ValueError:  # the only other refusal: an integer of thousands of digits
            report.add_error(number, "not valid JSON (a number is too long)")
            continue
        try:
            yield parse_ad(record, now)
        except BadRecord as exc:
            report.add_error(number, str(exc))


def _columns() -> str:
    return ", ".join(f.column_name for f in _FIELDS)


def _updates() -> str:
    """The DO UPDATE clause: only an ad whose content changed is written (and its updated_at).

    The scraper sees most ads again every day; leaving unchanged rows alone saves their index
    updates and dead tuples.
    """
    assignments = ", ".join(
        f"{f.column_name} = excluded.{f.column_name}" for f in _UPDATED_ON_CONFLICT
    )
    content = [f.column_name for f in _UPDATED_ON_CONFLICT if f.name != "updated_at"]
    old = ", ".join(f"ad.{c}" for c in content)
    new = ", ".join(f"excluded.{c}" for c in content)
    distinct = "IS DISTINCT FROM" if is_postgres() else "IS NOT"
    return f"{assignments} WHERE ({old}) {distinct} ({new})"


def _write_sqlite(batch: list[tuple[Any, ...]]) -> None:
    # Raw SQL with executemany: building a peewee query for thousands of rows costs more than
    # writing them. One statement per row, in file order, so a repeated ad keeps its last line.
    values = ", ".join(database.param for _ in _FIELDS)
    database.cursor().executemany(
        f"INSERT INTO ad ({_columns()}) VALUES ({values})"
        f" ON CONFLICT (source, external_id) DO UPDATE SET {_updates()}",
        batch,
    )


def _write_postgres(batch: list[tuple[Any, ...]]) -> None:
    # COPY into a temporary table, then one INSERT ... SELECT: several times faster than row by
    # row. DISTINCT ON keeps a repeated ad's last line (one statement may not update a row twice).
    columns = _columns()
    cursor = database.connection().cursor()
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS ad_import ON COMMIT DROP AS"
        f" SELECT {columns}, 0 AS position FROM ad WITH NO DATA"
    )
    with cursor.copy(f"COPY ad_import ({columns}, position) FROM STDIN") as copy:
        for position, row in enumerate(batch):
            copy.write_row((*row, position))
    cursor.execute(
        f"INSERT INTO ad ({columns})"
        f" SELECT DISTINCT ON (source, external_id) {columns} FROM ad_import"
        f" ORDER BY source, external_id, position DESC"
        f" ON CONFLICT (source, external_id) DO UPDATE SET {_updates()}"
    )
    cursor.execute("TRUNCATE ad_import")


def _write(batch: list[tuple[Any, ...]]) -> None:
    if is_postgres():
        _write_postgres(batch)
    else:
        _write_sqlite(batch)


def import_lines(
    lines: Iterable[bytes], *, strict: bool = False, batch_size: int = BATCH_SIZE
) -> ImportReport:
    """Upsert the valid lines in one transaction; `strict`: any invalid line imports nothing."""
    report = ImportReport()
    with write_transaction():
        batch: list[tuple[Any, ...]] = []
        for row in _records(lines, report):
            batch.append(row)
            if len(batch) >= batch_size:
                _write(batch)
                report.written += len(batch)
                batch = []
        if batch:
            _write(batch)
            report.written += len(batch)
        if strict and report.invalid:
            # Raising inside the transaction rolls back every batch already written.
            raise InvalidInput(
                f"{report.invalid} invalid line(s), nothing imported; first: {report.errors[0]}"
            )
    return report


def import_file(path: str | Path, *, strict: bool = False) -> ImportReport:
    """Import a JSON Lines file of ads (see :func:`import_lines`)."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"cannot read {path}: no such file")
    try:
        with file.open("rb") as handle:
            return import_lines(handle, strict=strict)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
