"""Importing an account's suppressed addresses from a CSV file (a list from another tool, a
provider's bounces).

The file needs a header row naming its columns: ``address`` (required), ``channel`` and
``reason`` (optional; any order, any letter case). Each row needs a phone number, a WhatsApp id
or an email address; a row without a channel takes the address's own (``email`` for an email
address, ``whatsapp`` otherwise), a row without a reason the import's. Bad rows are reported
with their line numbers and skipped; the good rows are inserted in chunks as the file is read,
in one transaction, so a file that cannot be read to the end leaves nothing half-written. An
address suppressed already keeps its first reason (the import counts it, as `already`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from storage import clock
from storage.db import write_transaction
from storage.errors import InvalidInput, NotFound
from storage.models.accounts import Account
from storage.models.consent import OPERATOR, REASONS, Suppression, normalise_address
from worker.addresses import normalise_email, normalise_phone
from worker.channels import validate_channel
from worker.csv_records import records
from worker.logging import get_logger

log = get_logger("outreach.consent")

COLUMNS = ("address", "channel", "reason")
# Suppressions per insert: a parameter list well under every backend's limit.
IMPORT_CHUNK = 500
# The longest address the table takes (an email address can be 320 characters).
MAX_ADDRESS = 320
# A WhatsApp id (a person's or a group's): its channel is WhatsApp, whatever else it holds.
_WHATSAPP_ID = re.compile(r"@(c\.us|s\.whatsapp\.net|g\.us)$", re.IGNORECASE)


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass
class SuppressionImport:
    account_id: int
    imported: int = 0
    # Good rows whose address was suppressed before (or earlier in the file).
    already: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)


def _header(cells: list[str]) -> list[str]:
    names: list[str] = []
    for cell in cells:
        name = cell.strip().lower()
        if name not in COLUMNS:
            raise InvalidInput(
                f"line 1: unknown column {cell.strip()!r} (expected {', '.join(COLUMNS)})"
            )
        if name in names:
            raise InvalidInput(f"line 1: column {cell.strip()!r} appears twice")
        names.append(name)
    if "address" not in names:
        raise InvalidInput("line 1: the header needs an address column")
    return names


def _address(raw: str) -> tuple[str, str]:
    """(its own channel, the normalised address), or InvalidInput."""
    text = raw.strip()
    if not text:
        raise InvalidInput("no address")
    if len(text) > MAX_ADDRESS:
        raise InvalidInput(f"address is longer than {MAX_ADDRESS} characters")
    if _WHATSAPP_ID.search(text):
        return "whatsapp", normalise_address(text)
    if "@" in text:
        return "email", normalise_address(normalise_email(text) or "")
    return "whatsapp", normalise_address(normalise_phone(text) or "")


def _parse(names: list[str], cells: list[str], default_reason: str) -> dict[str, str]:
    if len(cells) != len(names):
        raise InvalidInput(f"expected {len(names)} fields, found {len(cells)}")
    if any("\x00" in cell for cell in cells):
        # The csv module lets NUL through; PostgreSQL refuses it in text.
        raise InvalidInput("contains a NUL character")
    values = dict(zip(names, cells, strict=True))
    channel, address = _address(values["address"])
    given = values.get("channel", "").strip().lower()
    if given:
        channel = validate_channel(given)
    reason = values.get("reason", "").strip().lower() or default_reason
    if reason not in REASONS:
        raise InvalidInput(f"unknown reason {reason!r} (expected one of {', '.join(REASONS)})")
    return {"channel": channel, "address": address, "reason": reason}


def import_suppressions(
    account_id: int, path: str | Path, reason: str = OPERATOR, source: str = "import"
) -> SuppressionImport:
    """Suppress the file's good rows in the account; bad rows come back with their lines.

    Bad input that concerns the whole file (unknown account, unreadable file, no header, an
    unknown default reason, a line that is not CSV or not UTF-8) raises and writes nothing.
    """
    if reason not in REASONS:
        raise InvalidInput(f"unknown reason {reason!r} (expected one of {', '.join(REASONS)})")
    path = Path(path)
    if not Account.select().where(Account.id == account_id).exists():
        raise NotFound(f"account {account_id} does not exist")
    if not path.is_file():
        raise InvalidInput(f"cannot read {path.name}: no such file")
    rows = records(path)
    try:
        first = next(rows, None)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc.strerror or exc}") from None
    if first is None:
        raise InvalidInput(f"{path.name} is empty (a header row is needed)")
    names = _header(first[1])
    report = SuppressionImport(account_id=account_id)
    pending: list[dict[str, object]] = []

    def flush() -> None:
        if not pending:
            return
        added = int(Suppression.insert_many(pending).on_conflict_ignore().as_rowcount().execute())
        report.imported += added
        report.already += len(pending) - added
        pending.clear()

    now = clock.now()
    with write_transaction():
        for line, cells in rows:
            try:
                row = _parse(names, cells, reason)
            except InvalidInput as exc:
                report.bad_rows.append(BadRow(line, str(exc)))
                continue
            pending.append(
                {
                    **row,
                    "account_id": account_id,
                    "source": f"{source}, line {line}"[:255],
                    "created_at": now,
                }
            )
            if len(pending) >= IMPORT_CHUNK:
                flush()
        flush()
    log.info(
        "consent.imported",
        account_id=account_id,
        imported=report.imported,
        already=report.already,
        rejected=len(report.bad_rows),
    )
    return report
