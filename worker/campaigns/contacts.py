"""Importing contacts from a CSV file into a named list.

The file needs a header row naming its columns: ``phone``, ``email``, ``first_name`` (any order,
any letter case; ``phone`` or ``email`` at least). Each row needs a valid phone number or email
address. Bad rows are reported with their line numbers and skipped; the good rows are imported
in one transaction, so a file that cannot be read to the end leaves nothing half-written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from storage import clock
from storage.db import write_transaction
from storage.errors import InvalidInput
from storage.models.campaigns import Contact, ContactList
from worker.addresses import normalise_email, normalise_phone
from worker.csv_records import records

# Header names accepted for each field (compared lower-cased, spaces and dashes as underscores).
COLUMNS = {
    "phone": "phone",
    "phone_number": "phone",
    "email": "email",
    "email_address": "email",
    "first_name": "first_name",
    "firstname": "first_name",
}
# Rows per insert (and per check against the contacts already in the list).
IMPORT_CHUNK = 2_000
MAX_FIRST_NAME = 200
MAX_LIST_NAME = 200


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass
class ImportReport:
    list_name: str
    list_id: int
    imported: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    line: int
    phone: str | None
    email: str | None
    first_name: str | None


def _header(cells: list[str]) -> list[str]:
    names: list[str] = []
    for cell in cells:
        key = re.sub(r"[\s-]+", "_", cell.strip().lower())
        if key not in COLUMNS:
            expected = "phone, email, first_name"
            raise InvalidInput(f"line 1: unknown column {cell.strip()!r} (expected {expected})")
        if COLUMNS[key] in names:
            raise InvalidInput(f"line 1: column {cell.strip()!r} appears twice")
        names.append(COLUMNS[key])
    if "phone" not in names and "email" not in names:
        raise InvalidInput("line 1: the header needs a phone or an email column")
    return names


def _parse(line: int, names: list[str], cells: list[str]) -> _Row:
    if len(cells) != len(names):
        raise InvalidInput(f"expected {len(names)} fields, found {len(cells)}")
    if any("\x00" in cell for cell in cells):
        # The csv module lets NUL through; PostgreSQL refuses it in text.
        raise InvalidInput("contains a NUL character")
    values = dict(zip(names, cells, strict=True))
    phone = normalise_phone(values.get("phone", ""))
    email = normalise_email(values.get("email", ""))
    if phone is None and email is None:
        raise InvalidInput("no phone number and no email address")
    first_name = values.get("first_name", "").strip() or None
    if first_name is not None and len(first_name) > MAX_FIRST_NAME:
        raise InvalidInput(f"first name is longer than {MAX_FIRST_NAME} characters")
    return _Row(line, phone, email, first_name)


class _Importer:
    """Checks each row against the file so far and the list, and inserts in chunks."""

    def __init__(self, contact_list: ContactList, report: ImportReport) -> None:
        self.contact_list = contact_list
        self.report = report
        self.seen_phone: dict[str, int] = {}
        self.seen_email: dict[str, int] = {}
        self.pending: list[_Row] = []

    def add(self, row: _Row) -> None:
        for value, seen, what in (
            (row.phone, self.seen_phone, "phone"),
            (row.email, self.seen_email, "email"),
        ):
            if value is not None and value in seen:
                self.report.bad_rows.append(BadRow(row.line, f"same {what} as line {seen[value]}"))
                return
        if row.phone is not None:
            self.seen_phone[row.phone] = row.line
        if row.email is not None:
            self.seen_email[row.email] = row.line
        self.pending.append(row)
        if len(self.pending) >= IMPORT_CHUNK:
            self.flush()

    def flush(self) -> None:
        rows, self.pending = self.pending, []
        if not rows:
            return
        list_id = self.contact_list.id
        phones = [r.phone for r in rows if r.phone is not None]
        emails = [r.email for r in rows if r.email is not None]
        existing_phones = set(
            Contact.select(Contact.phone)
            .where((Contact.contact_list == list_id) & Contact.phone.in_(phones))
            .scalars()
        )
        existing_emails = set(
            Contact.select(Contact.email)
            .where((Contact.contact_list == list_id) & Contact.email.in_(emails))
            .scalars()
        )
        now = clock.now()
        fresh = []
        for r in rows:
            if r.phone in existing_phones or r.email in existing_emails:
                what = "phone" if r.phone in existing_phones else "email"
                self.report.bad_rows.append(
                    BadRow(r.line, f"a contact with this {what} is already in the list")
                )
            else:
                fresh.append((list_id, r.phone, r.email, r.first_name, now))
        if fresh:
            Contact.insert_many(
                fresh,
                fields=[
                    Contact.contact_list,
                    Contact.phone,
                    Contact.email,
                    Contact.first_name,
                    Contact.created_at,
                ],
            ).as_rowcount().execute()
        self.report.imported += len(fresh)


def import_contacts(list_name: str, path: str | Path) -> ImportReport:
    """Add the file's good rows to the list (made if new); bad rows come back with their lines."""
    name = (list_name or "").strip()
    if not name or len(name) > MAX_LIST_NAME:
        raise InvalidInput(f"list name must be 1 to {MAX_LIST_NAME} characters")
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"cannot read {path.name}: no such file")
    rows = records(path)
    first = next(rows, None)
    if first is None:
        raise InvalidInput(f"{path.name} is empty (a header row is needed)")
    names = _header(first[1])
    with write_transaction():
        contact_list, created = ContactList.get_or_create(
            name=name, defaults={"created_at": clock.now()}
        )
        report = ImportReport(list_name=name, list_id=contact_list.id)
        importer = _Importer(contact_list, report)
        for line, cells in rows:
            try:
                importer.add(_parse(line, names, cells))
            except InvalidInput as exc:
                report.bad_rows.append(BadRow(line, str(exc)))
        importer.flush()
        if created and not report.imported:
            # A file with no good row leaves no trace: not even an empty new list.
            contact_list.delete_instance()
    report.bad_rows.sort(key=lambda bad: bad.line)
    return report
