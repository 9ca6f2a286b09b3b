"""The suppression list: add, lift and look up an account's suppressed addresses.

The list is checked where no kind of send can forget it: inside the outbox claim statements and
again when a delivery claims its window (worker.outbox_sql). This module only writes it.
"""

from __future__ import annotations

from storage import clock
from storage.errors import InvalidInput
from storage.models.consent import REASONS, Suppression, normalise_address
from worker.channels import validate_channel
from worker.logging import get_logger

log = get_logger("outreach.consent")


def suppress(account_id: int, channel: str, recipient: str, reason: str, source: str) -> bool:
    """Suppress `recipient` for the account (it stops every channel to that address); True
    when it is new, False when it was suppressed already (the first reason is kept)."""
    if reason not in REASONS:
        raise InvalidInput(f"unknown reason {reason!r} (expected one of {', '.join(REASONS)})")
    validate_channel(channel)
    address = normalise_address(recipient)
    if not address:
        raise InvalidInput("address is empty")
    added = (
        Suppression.insert(
            account_id=account_id,
            channel=channel,
            address=address,
            reason=reason,
            source=source[:255],
            created_at=clock.now(),
        )
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
    )
    if added:
        log.info("consent.suppressed", account_id=account_id, channel=channel, reason=reason)
    return bool(added)


def lift(account_id: int, recipient: str, channel: str | None = None) -> int:
    """Remove the address's suppressions in the account (of one channel, or all); returns how
    many were removed."""
    query = Suppression.delete().where(
        (Suppression.account_id == account_id)
        & (Suppression.address == normalise_address(recipient))
    )
    if channel is not None:
        query = query.where(Suppression.channel == channel)
    return int(query.execute())


def is_suppressed(account_id: int | None, recipient: str) -> bool:
    """Whether the address is suppressed in the account (in any account for None)."""
    query = Suppression.select().where(Suppression.address == normalise_address(recipient))
    if account_id is not None:
        query = query.where(Suppression.account_id == account_id)
    return bool(query.exists())
