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
    CONTACT_QUEUED,
    CONTACT_SENT,
    CONTACT_SUPPRESSED,
    CONTACT_UNKNOWN,
    CONTACTE,
    NOUVEAU,
    ContactedAd,
    Lead,
)
from storage.models.outbox import FAILED, SENT, SUPPRESSED, UNKNOWN, OutboxMessage
from worker.hunts import credits, pacing
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
    settled = _settle(messages, now)
    for contact, status in settled:
        if status in _NOTHING_SENT:
            pacing.release(contact.hunt_id, contact.channel, contact.day)
            log.info("hunt.contact_failed", hunt_id=contact.hunt_id, ad_id=contact.ad_id)
    _settle_credits(settled)
    sent: dict[int, list[int]] = {}
    for contact, status in settled:
        if status == SENT:
            sent.setdefault(contact.hunt_id, []).append(contact.ad_id)
    for hunt_id, ad_ids in sorted(sent.items()):
        # The leads were created with the contacts, by the same hunt.
        Lead.update(stage=CONTACTE, updated_at=now).where(
            (Lead.hunt == hunt_id) & Lead.ad.in_(sorted(ad_ids)) & (Lead.stage == NOUVEAU)
        ).execute()


def _settle(messages: Sequence[OutboxMessage], now: datetime) -> list[tuple[ContactedAd, str]]:
    """The contacts' statuses from their messages' outcomes, one statement per outcome; returns
    those changed, in (hunt, day, channel) order.

    Conditional on `queued`: an outcome is applied once, however often it is reported.
    """
    by_status: dict[str, list[int]] = {}
    for message in messages:
        by_status.setdefault(message.status, []).append(message.id)
    settled: list[tuple[ContactedAd, str]] = []
    for status, outbox_ids in sorted(by_status.items()):
        changed = (
            ContactedAd.update(status=_CONTACT_STATUS[status], finished_at=now)
            .where(
                ContactedAd.outbox_message.in_(sorted(outbox_ids))
                & (ContactedAd.status == CONTACT_QUEUED)
            )
            .returning(ContactedAd)
            .execute()
        )
        settled += [(contact, status) for contact in changed]
    _warn_without_contact(
        {m.id for m in messages} - {contact.outbox_message_id for contact, _ in settled}
    )
    settled.sort(key=lambda item: (item[0].hunt_id, item[0].day, item[0].channel, item[0].id))
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


def _settle_credits(settled: list[tuple[ContactedAd, str]]) -> None:
    """Per hunt and channel: the failed sends' reservations are freed, the others' consumed
    (sent, or unknown: it may have gone out, so the credit counts as used)."""
    counts: dict[tuple[int, str], list[int]] = {}
    for contact, status in settled:
        used_freed = counts.setdefault((contact.hunt_id, contact.channel), [0, 0])
        used_freed[1 if status in _NOTHING_SENT else 0] += 1
    for (hunt_id, channel), (used, freed) in sorted(counts.items()):
        credits.settle(hunt_id, channel, used=used, freed=freed)
