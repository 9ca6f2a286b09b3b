"""A page of a hunt's matched ads, contacted in a few statements for the whole page.

In the caller's transaction, in this order (every run takes its locks in the same order, so
runs of hunts sharing an account wait for each other but never deadlock):

1. the page's pacing slots, one conditional upsert of the day's counter (worker.hunts.pacing);
   the counter stays locked until the commit, so a second run of the same hunt waits and then
   sees this one's count: the daily limit holds on any number of workers;
2. the credits, one conditional update per channel (worker.hunts.credits);
3. the leads, one insert (unique per account and ad: an ad already a lead is refused);
4. the outbox claims, one insert (worker.outbox.queue_messages, key ``hunt:{hunt}:ad:{ad}``:
   a key claimed before is refused, a suppressed owner's row comes back `suppressed`);
5. the contacted ads, one insert; the per-channel counters, one upsert.

A refused contact costs only itself: its slot and its credit are given back, its lead (and a
suppressed claim) deleted, in the same transaction; those statements run only when something
was refused. The deliveries of the claims are enqueued as groups once the transaction commits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from storage.models.hunts import Ad, Hunt, Lead
from storage.models.outbox import SUPPRESSED, OutboxMessage
from worker.hunts import credits, pacing, sql
from worker.hunts.criteria import recipient_for, template_values
from worker.hunts.template import Part, render
from worker.outbox import Outgoing, queue_messages

# The outbox source of hunt messages (outcome handlers key on it).
SOURCE = "hunt"


def idempotency_key(hunt_id: int, ad_id: int) -> str:
    return f"hunt:{hunt_id}:ad:{ad_id}"


class Run(Protocol):
    """What a page needs of its run (worker.hunts.process)."""

    hunt: Hunt
    day: date
    now: datetime
    template: tuple[Part, ...]
    free: dict[str, int]
    contacted: int

    def skip(self, reason: str) -> None: ...


@dataclass
class _Planned:
    order: int  # the ad's place in the page: leads are written in page order (lock order)
    ad: Ad
    body: str
    channel: str = ""
    recipient: str = ""


@dataclass
class PageResult:
    contacted: int = 0
    at_limit: bool = False
    # How many ads of the page were looked at (the next page starts after the last of them).
    seen: int = 0


def _usable(run: Run, free: dict[str, int]) -> list[str]:
    return [c for c in run.hunt.channels if free.get(c, 0) > 0]


def _assign(run: Run, planned: _Planned, free: dict[str, int]) -> bool:
    """The first channel with credits left and an address of the ad's owner; False if none."""
    for channel in _usable(run, free):
        recipient = recipient_for(planned.ad, channel)
        if recipient:
            planned.channel, planned.recipient = channel, recipient
            free[channel] -= 1
            return True
    run.skip("no_contact_for_channels")
    return False


def _plan(run: Run, ads: list[Ad], room: int | None) -> tuple[list[_Planned], int]:
    """The ads to contact, each on its channel, within the credits the run believes free and
    `room` slots; returns them and how many ads were looked at."""
    free = dict(run.free)
    planned: list[_Planned] = []
    seen = 0
    for order, ad in enumerate(ads):
        if (room is not None and len(planned) >= room) or not _usable(run, free):
            break
        seen += 1
        body = render(run.template, template_values(ad))
        if not body.strip():
            run.skip("empty_message")
            continue
        candidate = _Planned(order, ad, body)
        if _assign(run, candidate, free):
            planned.append(candidate)
    return planned, seen


def _reserve(run: Run, planned: list[_Planned]) -> list[_Planned]:
    """Hold the planned contacts' credits, a statement per channel; a contact whose channel
    ran short (another run spent them) moves to its next channel, or is dropped."""
    kept: list[_Planned] = []
    while planned:
        by_channel: dict[str, list[_Planned]] = {}
        for p in planned:
            by_channel.setdefault(p.channel, []).append(p)
        short: list[_Planned] = []
        for channel in run.hunt.channels:  # the hunt's order: the same in every run
            group = by_channel.get(channel, [])
            if not group:
                continue
            held = credits.reserve_many(run.hunt.id, channel, len(group))
            kept += group[:held]
            short += group[held:]
            run.free[channel] = run.free.get(channel, 0) - held if held == len(group) else 0
        planned = []
        free = dict(run.free)
        for p in sorted(short, key=lambda p: p.order):
            if _assign(run, p, free):
                planned.append(p)
    return sorted(kept, key=lambda p: p.order)


def contact_page(run: Run, ads: list[Ad], room: int | None) -> PageResult:
    """Contact the page's ads (newest first) within `room` slots and the run's credits; in the
    caller's transaction. Updates the run's free credits and skip counts."""
    hunt = run.hunt
    planned, seen = _plan(run, ads, room)
    result = PageResult(seen=seen)
    if not planned:
        return result
    taken = pacing.take_many(hunt.id, run.day, len(planned), hunt.daily_pacing_limit)
    # Fewer slots than asked: another run took some since this one read the count, and the day
    # is full once these are used (unless some are given back below).
    short_of_slots = taken < len(planned)
    if short_of_slots:
        result.seen = planned[taken].order
        planned = planned[:taken]
    planned = _reserve(run, planned)
    if not planned:
        pacing.record_many(hunt.id, run.day, {}, unused=taken)
        result.at_limit = short_of_slots and not taken
        return result

    leads = sql.insert_leads(hunt.account_id, hunt.id, [p.ad.id for p in planned], run.now)
    for p in planned:
        if p.ad.id not in leads:
            run.skip("already_lead")
    with_lead = [p for p in planned if p.ad.id in leads]
    claims = queue_messages(
        [
            Outgoing(idempotency_key(hunt.id, p.ad.id), p.channel, p.recipient, p.body)
            for p in with_lead
        ],
        SOURCE,
        account_id=hunt.account_id,
    )
    by_key = {claim.idempotency_key: claim for claim in claims}
    contacts: list[tuple[_Planned, OutboxMessage]] = []
    undone: list[int] = []  # leads to delete: their contact was refused
    suppressed: list[int] = []  # claims to delete with them: the ad may be contacted later
    for p in with_lead:
        claim = by_key.get(idempotency_key(hunt.id, p.ad.id))
        if claim is None:
            # The key outlives a deleted lead: such an ad was contacted once already.
            run.skip("already_queued")
            undone.append(p.ad.id)
        elif claim.status == SUPPRESSED:
            # The owner opted out: no slot, no credit, no lead.
            run.skip("suppressed")
            undone.append(p.ad.id)
            suppressed.append(claim.id)
        else:
            contacts.append((p, claim))
    if undone:
        Lead.delete().where((Lead.hunt == hunt.id) & Lead.ad.in_(undone)).execute()
    if suppressed:
        OutboxMessage.delete().where(OutboxMessage.id.in_(suppressed)).execute()
    sql.insert_contacts(
        hunt.id, run.day, run.now, [(p.ad.id, p.channel, claim.id) for p, claim in contacts]
    )

    per_channel = Counter(p.channel for p, _ in contacts)
    refused = Counter(p.channel for p in planned) - per_channel
    for channel in hunt.channels:
        if refused[channel]:
            credits.settle(hunt.id, channel, used=0, freed=refused[channel])
            run.free[channel] = run.free.get(channel, 0) + refused[channel]
    pacing.record_many(hunt.id, run.day, dict(per_channel), unused=taken - len(contacts))
    result.contacted = len(contacts)
    result.at_limit = short_of_slots and taken == len(contacts)
    run.contacted += len(contacts)
    return result
