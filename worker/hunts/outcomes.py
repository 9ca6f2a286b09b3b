"""What a hunt message's delivery means for the hunt, recorded in the delivery's own transaction.

- sent: the reserved credit is consumed and the lead moves from `nouveau` to `contacte`;
- failed: the credit and the day's pacing slot are given back (the lead stays `nouveau`, and the
  ad is not contacted again by this hunt: its key is spent);
- unknown (the send died mid-way, it may have gone out): the credit counts as consumed and the
  slot stays taken, so a cap can never be exceeded; the lead stays `nouveau` for an operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from storage import clock
from storage.models.hunts import (
    CONTACT_FAILED,
    CONTACT_SENT,
    CONTACT_SUPPRESSED,
    CONTACT_UNKNOWN,
    ContactedAd,
)
from storage.models.outbox import FAILED, SENT, SUPPRESSED, UNKNOWN, OutboxMessage
from worker.hunts import credits, pacing, sql
from worker.hunts.process import SOURCE
from worker.logging import get_logger
from worker.outcomes import on_outcome

log = get_logger("outreach.hunts")

_CONTACT_STATUS = {
    SENT: CONTACT_SENT,
    FAILED: CONTACT_FAILED,
    UNKNOWN: CONTACT_UNKNOWN,
    SUPPRESSED: CONTACT_SUPPRESSED,
}
# Outcomes that sent nothing: the slot and the credit go back.
_NOTHING_SENT = (FAILED, SUPPRESSED)


@on_outcome(SOURCE)
def record_hunt_outcomes(messages: Sequence[OutboxMessage]) -> None:
    """A window's outcomes, a statement per kind of change rather than per row, in the order a
    hunt's run takes its locks, whatever order they came in: the contacts, then the pacing
    slots given back (failed sends), then the credits, then the leads, each in (hunt, channel)
    order. Two transactions that touch the same rows then wait for each other in the same
    order, never in a cycle."""
    now = clock.now()
    status = {message.id: message.status for message in messages}
    settled = _settle(messages, now)
    for contact in settled:
        if status[contact.outbox_id] in _NOTHING_SENT:
            pacing.release(contact.hunt_id, contact.channel, contact.day)
            log.info("hunt.contact_failed", hunt_id=contact.hunt_id, ad_id=contact.ad_id)
    _settle_credits(settled, status)
    sent: dict[int, list[int]] = {}
    for contact in settled:
        if status[contact.outbox_id] == SENT:
            sent.setdefault(contact.hunt_id, []).append(contact.ad_id)
    for hunt_id, ad_ids in sorted(sent.items()):
        # The leads were created with the contacts, by the same hunt.
        sql.mark_contacted(hunt_id, sorted(ad_ids), now)


def _settle(messages: Sequence[OutboxMessage], now: datetime) -> list[sql.Settled]:
    """The contacts' statuses from their messages' outcomes, in one statement; returns those
    changed, in (hunt, day, channel) order.

    Conditional on `queued`: an outcome is applied once, however often it is reported.
    """
    outcomes = sorted((message.id, _CONTACT_STATUS[message.status]) for message in messages)
    settled = sql.settle_contacts(outcomes, now)
    _warn_without_contact({m.id for m in messages} - {contact.outbox_id for contact in settled})
    settled.sort(key=lambda c: (c.hunt_id, c.day, c.channel, c.outbox_id))
    return settled


def _warn_without_contact(unchanged: set[int]) -> None:
    """An outcome reported again changes nothing, quietly; a hunt message with no contact at
    all is an anomaly worth a line (a query only when some outcome changed nothing)."""
    if not unchanged:
        return
    known = {
        contact.outbox_message_id
        for contact in ContactedAd.select(ContactedAd.outbox_message).where(
            ContactedAd.outbox_message.in_(sorted(unchanged))
        )
    }
    for outbox_id in sorted(unchanged - known):
        log.warning("hunt.outcome_without_contact", outbox_id=outbox_id)


def _settle_credits(settled: list[sql.Settled], status: dict[int, str]) -> None:
    """Per hunt and channel: the failed sends' reservations are freed, the others' consumed
    (sent, or unknown: it may have gone out, so the credit counts as used)."""
    counts: dict[tuple[int, str], list[int]] = {}
    for contact in settled:
        used_freed = counts.setdefault((contact.hunt_id, contact.channel), [0, 0])
        used_freed[1 if status[contact.outbox_id] in _NOTHING_SENT else 0] += 1
    for (hunt_id, channel), (used, freed) in sorted(counts.items()):
        credits.settle(hunt_id, channel, used=used, freed=freed)
