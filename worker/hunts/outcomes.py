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
    CONTACT_UNKNOWN,
    CONTACTE,
    NOUVEAU,
    ContactedAd,
    Lead,
)
from storage.models.outbox import FAILED, SENT, UNKNOWN, OutboxMessage
from worker.hunts import credits, pacing
from worker.hunts.process import SOURCE
from worker.logging import get_logger
from worker.outbox import on_outcome

log = get_logger("outreach.hunts")

_CONTACT_STATUS = {SENT: CONTACT_SENT, FAILED: CONTACT_FAILED, UNKNOWN: CONTACT_UNKNOWN}


@on_outcome(SOURCE)
def record_hunt_outcomes(messages: Sequence[OutboxMessage]) -> None:
    """A window's outcomes, in the order a hunt's run takes its locks, whatever order they came
    in: each contact first, then the pacing slots given back (failed sends), then the credits,
    then the leads, each in (hunt, day, channel) order. Two transactions that touch the same
    rows then always wait for each other in the same order, never in a cycle."""
    now = clock.now()
    settled = [
        (contact, message.status)
        for message in sorted(messages, key=lambda m: m.id)
        if (contact := _settle(message, now)) is not None
    ]

    def order(item: tuple[ContactedAd, str]) -> tuple[int, object, str, int]:
        contact, _ = item
        return (contact.hunt_id, contact.day, contact.channel, contact.id)

    settled.sort(key=order)
    for contact, status in settled:
        if status == FAILED:
            pacing.release(contact.hunt_id, contact.channel, contact.day)
    for contact, status in settled:
        if status == FAILED:
            credits.release(contact.hunt_id, contact.channel)
            log.info("hunt.contact_failed", hunt_id=contact.hunt_id, ad_id=contact.ad_id)
        else:
            # Sent, or unknown (it may have gone out): the credit counts as used.
            credits.consume(contact.hunt_id, contact.channel)
    for contact, status in settled:
        if status == SENT:
            # The lead was created with the contact, by the same hunt.
            Lead.update(stage=CONTACTE, updated_at=now).where(
                (Lead.ad == contact.ad_id)
                & (Lead.hunt == contact.hunt_id)
                & (Lead.stage == NOUVEAU)
            ).execute()


def _settle(message: OutboxMessage, now: datetime) -> ContactedAd | None:
    """The contact's status from its message's outcome; None when there is nothing to apply.

    Conditional on `queued`: the outcome is applied once, however often it is reported.
    """
    contact = ContactedAd.get_or_none(ContactedAd.outbox_message == message.id)
    if contact is None:
        log.warning("hunt.outcome_without_contact", outbox_id=message.id)
        return None
    settled = (
        ContactedAd.update(status=_CONTACT_STATUS[message.status], finished_at=now)
        .where((ContactedAd.id == contact.id) & (ContactedAd.status == CONTACT_QUEUED))
        .execute()
    )
    return contact if settled else None
