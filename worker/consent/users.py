"""A member who opted out (the goodbye's `stop`, the re-engagement opt-out flag): every address
of theirs is suppressed in their account, so no campaign, hunt or goodbye writes to them again.

A group's WhatsApp id is not a person: the group is never suppressed for one member's opt-out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import cast

from peewee import JOIN

from storage import clock
from storage.models.accounts import User
from storage.models.consent import OPT_OUT, Suppression, normalise_address
from storage.models.engagement import UserProfile
from worker.logging import get_logger

log = get_logger("outreach.consent")

# What heard the opt-out, in a suppression's source: the goodbye's answer, or the profile's flag.
STOP = "stop"
OPTED_OUT = "opt_out"
# Users read, and suppressions written, per statement.
USER_CHUNK = 500


def user_source(cause: str, user_id: int) -> str:
    """A suppression's source for a member's opt-out (``engagement:stop:user:12``)."""
    return f"engagement:{cause}:user:{user_id}"


def _person_addresses(
    email: str | None, phone: str | None, jid: str | None
) -> Iterator[tuple[str, str]]:
    """(channel, normalised address) for each address that reaches the person themself."""
    if email and email.strip():
        yield "email", normalise_address(email)
    for number in (phone, jid):
        if not number or not number.strip():
            continue
        address = normalise_address(number)
        # A person's number or WhatsApp id normalises to digits; what keeps an "@" is a group.
        if address and "@" not in address:
            yield "whatsapp", address


def _rows(user_ids: Sequence[int], cause: str) -> list[dict[str, object]]:
    query = (
        User.select(User.id, User.account, User.email, User.phone, UserProfile.whatsapp_jid)
        .join(UserProfile, JOIN.LEFT_OUTER, on=(UserProfile.user == User.id))
        .where(User.id.in_(list(user_ids)))
        .tuples()
    )
    found = cast(list[tuple[int, int, str | None, str | None, str | None]], list(query))
    now = clock.now()
    rows: list[dict[str, object]] = []
    for user_id, account_id, email, phone, jid in found:
        seen: set[str] = set()
        for channel, address in _person_addresses(email, phone, jid):
            if address in seen:  # the phone and the WhatsApp id are usually one number
                continue
            seen.add(address)
            rows.append(
                {
                    "account_id": account_id,
                    "channel": channel,
                    "address": address,
                    "reason": OPT_OUT,
                    "source": user_source(cause, user_id),
                    "created_at": now,
                }
            )
    return rows


def suppress_users(user_ids: Iterable[int], cause: str) -> int:
    """Suppress every address of each user (email, phone, WhatsApp id; never a group) in the
    user's account, reason `opt_out`; returns how many suppressions are new. Idempotent: an
    address suppressed already keeps its first reason and source."""
    ids = list(dict.fromkeys(int(user_id) for user_id in user_ids))
    added = 0
    for first in range(0, len(ids), USER_CHUNK):
        rows = _rows(ids[first : first + USER_CHUNK], cause)
        if rows:
            added += int(Suppression.insert_many(rows).on_conflict_ignore().as_rowcount().execute())
    if added:
        log.info("consent.users_suppressed", users=len(ids), suppressed=added, cause=cause)
    return added
