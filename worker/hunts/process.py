"""One hunt's work for today: match, then contact as many new ads as pacing and credits allow.

Each contact is a savepoint: take a pacing slot (conditional update), reserve a channel credit
(conditional update), create the lead (unique per account and ad), queue the first message
through the outbox (key ``hunt:{hunt_id}:ad:{ad_id}``) and record the contacted ad. Anything
refused rolls the whole contact back, so a slot or a credit is never held for nothing; the
page's deliveries are enqueued together, as groups, once its transaction commits. The same
hunt run twice, even at the same moment on two workers, contacts no ad twice and never more than
the day's limit: the second run queues on the pacing row and sees the first one's count.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from peewee import fn

from storage import clock
from storage.db import database, write_transaction
from storage.errors import InvalidInput, NotFound
from storage.models.accounts import Account
from storage.models.hunts import (
    ACTIVE,
    CONTACT_QUEUED,
    NOUVEAU,
    Ad,
    ContactedAd,
    Hunt,
    HuntRun,
    Lead,
)
from storage.models.outbox import SUPPRESSED, OutboxMessage
from worker.hunts import credits, pacing
from worker.hunts.criteria import find_matches, parse_criteria, recipient_for, template_values
from worker.hunts.template import Part, compile_template, render
from worker.logging import get_logger
from worker.outbox import enqueue_deliveries, queue_message

log = get_logger("outreach.hunts")

# Ads fetched per matching query; a run rarely needs more than one page.
PAGE_SIZE = 200
# The outbox source of hunt messages (outcome handlers key on it).
SOURCE = "hunt"


def idempotency_key(hunt_id: int, ad_id: int) -> str:
    return f"hunt:{hunt_id}:ad:{ad_id}"


class Contact(enum.StrEnum):
    CONTACTED = "contacted"
    AT_LIMIT = "at_limit"
    NO_CREDIT = "no_credit"
    ALREADY_LEAD = "already_lead"
    ALREADY_QUEUED = "already_queued"
    SUPPRESSED = "suppressed"


class _Refused(Exception):
    def __init__(self, outcome: Contact) -> None:
        self.outcome = outcome


@dataclass
class _Run:
    hunt: Hunt
    day: date
    now: datetime
    template: tuple[Part, ...]
    free: dict[str, int]
    contacted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    # Outbox rows claimed by the page being written: enqueued together once it commits.
    claimed: list[int] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def usable_channels(self) -> list[str]:
        return [c for c in self.hunt.channels if self.free.get(c, 0) > 0]


def _contact(run: _Run, ad: Ad, channel: str, recipient: str, body: str) -> Contact:
    """One contact, in a savepoint of the page's transaction: all of it, or none of it."""
    hunt = run.hunt
    try:
        with database.atomic():
            if not pacing.take(hunt.id, channel, run.day, hunt.daily_pacing_limit):
                raise _Refused(Contact.AT_LIMIT)
            if not credits.reserve(hunt.id, channel):
                raise _Refused(Contact.NO_CREDIT)
            lead = (
                Lead.insert(
                    account=hunt.account_id,
                    hunt=hunt.id,
                    ad=ad.id,
                    stage=NOUVEAU,
                    position=0,
                    created_at=run.now,
                    updated_at=run.now,
                )
                .on_conflict_ignore()
                .as_rowcount()
                .execute()
            )
            if not lead:
                raise _Refused(Contact.ALREADY_LEAD)
            key = idempotency_key(hunt.id, ad.id)
            # The key outlives a deleted lead: such an ad was contacted once already.
            if OutboxMessage.select().where(OutboxMessage.idempotency_key == key).exists():
                raise _Refused(Contact.ALREADY_QUEUED)
            message = queue_message(
                key,
                channel,
                recipient,
                body,
                source=SOURCE,
                enqueue=False,
                account_id=hunt.account_id,
            )
            if message.status == SUPPRESSED:
                # The owner opted out: the savepoint gives back the slot, credit and lead.
                raise _Refused(Contact.SUPPRESSED)
            ContactedAd.insert(
                hunt=hunt.id,
                ad=ad.id,
                channel=channel,
                outbox_message=message.id,
                day=run.day,
                status=CONTACT_QUEUED,
                contacted_at=run.now,
            ).execute()
    except _Refused as refused:
        return refused.outcome
    run.claimed.append(message.id)  # only a contact that was kept: its savepoint is released
    return Contact.CONTACTED


def _contact_ad(run: _Run, ad: Ad) -> Contact | None:
    """Contact one ad on the first channel that has credits and an address; None to skip it."""
    body = render(run.template, template_values(ad))
    if not body.strip():
        run.skip("empty_message")
        return None
    while True:
        usable = run.usable_channels()
        if not usable:
            return None
        for channel in usable:
            recipient = recipient_for(ad, channel)
            if recipient:
                break
        else:
            run.skip("no_contact_for_channels")
            return None
        outcome = _contact(run, ad, channel, recipient, body)
        if outcome is Contact.NO_CREDIT:
            run.free[channel] = 0  # another run used them up: try the next channel
            continue
        if outcome is Contact.CONTACTED:
            run.free[channel] -= 1
            run.contacted += 1
        elif outcome is not Contact.AT_LIMIT:
            run.skip(outcome.value)
        return outcome


def run_hunt(hunt_id: int, run_id: int | None = None) -> dict[str, Any]:
    """Run one hunt now; safe to call twice, concurrently. Returns what it did."""
    try:
        row = (
            Hunt.select(Hunt, Account.timezone)
            .join(Account)
            .where(Hunt.id == hunt_id)
            .objects()
            .first()
        )
    except ValueError as exc:  # JSONDecodeError: a JSON column holds something else
        detail = getattr(exc, "msg", str(exc))
        raise InvalidInput(
            f"hunt {hunt_id}: stored criteria or channels are not JSON ({detail})"
        ) from None
    if row is None:
        raise NotFound(f"hunt {hunt_id} does not exist")
    hunt: Hunt = row
    now = clock.now()
    day = pacing.local_day(row.timezone, now)
    if hunt.status != ACTIVE:
        _finish(hunt_id, run_id, now, 0, touch_scan=False)
        log.info("hunt.not_active", hunt_id=hunt_id, status=hunt.status)
        return {"hunt_id": hunt_id, "day": day.isoformat(), "contacted": 0, "stopped": hunt.status}

    try:
        criteria = parse_criteria(hunt.criteria)
    except InvalidInput as exc:
        # Written around the checks (by hand, a bad migration): refused, not retried.
        raise InvalidInput(f"hunt {hunt_id}: stored {exc}") from None
    run = _Run(hunt, day, now, compile_template(hunt.message_template), credits.available(hunt.id))
    left = pacing.remaining(hunt.id, day, hunt.daily_pacing_limit)
    cursor: tuple[datetime, int] | None = None
    stopped = "no_more_matching_ads"
    while True:
        usable = run.usable_channels()
        if left is not None and run.contacted >= left:
            stopped = "pacing_limit"
            break
        if not usable:
            stopped = "no_credits"
            break
        wanted = sum(run.free[c] for c in usable)
        if left is not None:
            wanted = min(wanted, left - run.contacted)
        page_size = min(wanted, PAGE_SIZE)
        page = find_matches(
            criteria,
            account_id=hunt.account_id,
            now=now,
            channels=usable,
            limit=page_size,
            after=cursor,
        )
        outcome: Contact | None = None
        # One commit per page (a day's contacts of a hunt, usually). Locks are taken in the same
        # order by every run (pacing, credits, then leads newest ad first), so runs of hunts
        # sharing an account wait for each other but never deadlock.
        with write_transaction():
            for ad in page:
                cursor = (ad.published_at, ad.id)
                outcome = _contact_ad(run, ad)
                if outcome is Contact.AT_LIMIT or not run.usable_channels():
                    break
        # Committed: the page's messages go to the broker together (a crash before this line
        # leaves them queued, for the relay).
        enqueue_deliveries(run.claimed)
        run.claimed.clear()
        if outcome is Contact.AT_LIMIT:
            stopped = "pacing_limit"
            break
        if len(page) < page_size:
            stopped = "no_more_matching_ads" if run.usable_channels() else "no_credits"
            break

    _finish(hunt_id, run_id, now, run.contacted, touch_scan=True)
    result = {
        "hunt_id": hunt_id,
        "day": day.isoformat(),
        "contacted": run.contacted,
        "stopped": stopped,
        "skipped": run.skipped,
    }
    log.info("hunt.run", **result)
    return result


def _finish(
    hunt_id: int, run_id: int | None, now: datetime, contacted: int, touch_scan: bool
) -> None:
    with write_transaction():
        if touch_scan:
            Hunt.update(last_scan_at=now).where(Hunt.id == hunt_id).execute()
        if run_id is not None:
            HuntRun.update(
                finished_at=now, contacted=fn.COALESCE(HuntRun.contacted, 0) + contacted
            ).where((HuntRun.id == run_id) & (HuntRun.hunt == hunt_id)).execute()


def record_failure(hunt_id: int, run_id: int | None, error: str) -> None:
    """A run that will not be retried: keep the reason on its run row, where status shows it."""
    log.error("hunt.run_failed", hunt_id=hunt_id, run_id=run_id, error=error)
    if run_id is None:
        return
    with write_transaction():
        HuntRun.update(error=error[:2_000]).where(
            (HuntRun.id == run_id) & (HuntRun.hunt == hunt_id)
        ).execute()
