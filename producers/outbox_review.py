"""Outbox rows left `unknown` (a send that died mid-way): an operator decides what happened.

- mark sent: the message did go out (the recipient got it); nothing is sent again;
- resend: send it again on purpose (the recipient may get it twice); the row goes back to
  `queued` and its delivery is enqueued after the commit.

Either way the row must still be `unknown` (a conditional update: two operators resolving the
same row at once, one wins), and who did it and why is kept in the row and logged.
"""

from __future__ import annotations

from storage import clock
from storage.db import database, write_transaction
from storage.errors import InvalidInput, InvalidState, NotFound
from storage.models.outbox import QUEUED, SENT, UNKNOWN, OutboxMessage
from worker.logging import get_logger

log = get_logger("outreach.outbox.review")

MARK_SENT = "mark-sent"
RESEND = "resend"
# Longest reason kept with the row.
MAX_REASON_LENGTH = 500


def unknown_messages(limit: int = 100, after_id: int = 0) -> list[OutboxMessage]:
    """Rows waiting for a decision, oldest first (keyset: pass the last id to page on)."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    return list(
        OutboxMessage.select()
        .where((OutboxMessage.status == UNKNOWN) & (OutboxMessage.id > after_id))
        .order_by(OutboxMessage.id)
        .limit(limit)
    )


def _check(outbox_id: int, by: str, reason: str) -> OutboxMessage:
    if not by.strip():
        raise InvalidInput("say who resolves it (--by)")
    if not reason.strip():
        raise InvalidInput("give a reason (--reason)")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    row = OutboxMessage.get_or_none(OutboxMessage.id == outbox_id)
    if row is None:
        raise NotFound(f"outbox message {outbox_id} does not exist")
    if row.status != UNKNOWN:
        raise InvalidState(f"outbox message {outbox_id} is {row.status}, not unknown")
    return row


def _note(action: str, by: str, reason: str, before: str | None) -> str:
    note = f"{action} by {by.strip()}: {reason.strip()}"
    return f"{note} (was: {before})" if before else note


def resolve(outbox_id: int, action: str, by: str, reason: str) -> OutboxMessage:
    """Mark an `unknown` row sent, or send it again; refuses any other row, changing nothing."""
    if action not in (MARK_SENT, RESEND):
        raise InvalidInput(f"unknown action {action!r} (mark-sent or resend)")
    now = clock.now()
    with write_transaction():
        row = _check(outbox_id, by, reason)
        note = _note(action, by, reason, row.last_error)
        if action == MARK_SENT:
            values = {"status": SENT, "finished_at": now, "last_error": note}
        else:
            values = {
                "status": QUEUED,
                "enqueued_at": now,
                "claimed_at": None,
                "finished_at": None,
                "last_error": note,
            }
        moved = (
            OutboxMessage.update(**values)
            .where((OutboxMessage.id == outbox_id) & (OutboxMessage.status == UNKNOWN))
            .execute()
        )
        if not moved:
            raise InvalidState(f"outbox message {outbox_id} was resolved by someone else")
        if action == RESEND:
            from worker.delivery_queue import enqueue_delivery

            account = row.account_id
            database.after_commit(lambda: enqueue_delivery(outbox_id, account_id=account))
    log.info("outbox.resolved", outbox_id=outbox_id, action=action, by=by.strip(), reason=reason)
    return OutboxMessage.get_by_id(outbox_id)
