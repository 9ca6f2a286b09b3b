"""Who wrote to us: the conversation an address belongs to, the member behind it, its lead.

The account is the one we last wrote to that address for (its latest outbox row); within it,
a member is a user whose phone or WhatsApp id is that address, in any of the forms people type.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import JOIN

from storage import clock
from storage.errors import InvalidState
from storage.models.accounts import User
from storage.models.engagement import GOODBYE_SENT, EngagementState, UserProfile
from storage.models.hunts import CONTACTE, NOUVEAU, REPONDU, ContactedAd, Lead, LeadEvent
from storage.models.outbox import OutboxMessage
from worker.engagement.answers import STOP, answer_goodbye
from worker.engagement.users import record_activity
from worker.inbound import replies

# The lead stages a reply moves on from (a lead further on stays where it is).
_BEFORE_REPLY = (NOUVEAU, CONTACTE)
# What a lead's history calls an owner's answer.
REPLY_EVENT = "reply"


@dataclass(frozen=True)
class Member:
    user_id: int
    locale: str | None


def last_sent_to(address: str) -> OutboxMessage | None:
    """Our latest message to the address that belongs to an account (None: a stranger)."""
    return (
        OutboxMessage.select(OutboxMessage.id, OutboxMessage.account_id, OutboxMessage.source)
        .where((OutboxMessage.address == address) & OutboxMessage.account_id.is_null(False))
        .order_by(OutboxMessage.id.desc())
        .first()
    )


def _stored_forms(address: str) -> list[str]:
    """How a phone or WhatsApp id may be stored for the digits `address`."""
    if not address.isdigit():
        return [address]
    return [address, f"+{address}", f"00{address}", f"{address}@c.us", f"{address}@s.whatsapp.net"]


def member(account_id: int, address: str) -> Member | None:
    """The account's member with that number as phone or WhatsApp id (the first made, if two).

    One statement of two indexed lookups (`app_user (account_id, phone)`, `user_profile
    (whatsapp_jid)`): an `OR` across the join would read every user of the database.
    """
    forms = _stored_forms(address)
    by_phone = (
        User.select(User.id, UserProfile.locale)
        .join(UserProfile, on=(UserProfile.user == User.id), join_type=JOIN.LEFT_OUTER)
        .where((User.account == account_id) & User.phone.in_(forms))
    )
    by_whatsapp = (
        User.select(User.id, UserProfile.locale)
        .join(UserProfile, on=(UserProfile.user == User.id))
        .where((User.account == account_id) & UserProfile.whatsapp_jid.in_(forms))
    )
    rows = list((by_phone | by_whatsapp).dicts())
    if not rows:
        return None
    first = min(rows, key=lambda row: int(row["id"]))
    return Member(int(first["id"]), first["locale"])


def stop_member(found: Member) -> None:
    """The engagement `stop`, as `outreach engagement answer USER stop` applies it."""
    answer_goodbye(found.user_id, STOP)


def member_reply(found: Member, text: str) -> str:
    """An answer to a pending goodbye, or else activity: the member is back."""
    state = EngagementState.get_or_none(EngagementState.user == found.user_id)
    if state is not None and state.state == GOODBYE_SENT:
        answer = replies.goodbye_answer(text, found.locale)
        if answer is not None:
            try:
                answer_goodbye(found.user_id, answer)
            except InvalidState as exc:
                return f"goodbye answer {answer} refused: {exc}"
            return f"goodbye answer {answer}"
    record_activity(found.user_id)
    return "member activity"


def hunt_reply(event_id: int, account_id: int, address: str, text: str) -> bool:
    """A reply to a hunt's first message: its lead moves to `repondu`, the text kept."""
    contact = (
        ContactedAd.select(ContactedAd.hunt, ContactedAd.ad)
        .join(OutboxMessage, on=(ContactedAd.outbox_message == OutboxMessage.id))
        .where((OutboxMessage.address == address) & (OutboxMessage.account_id == account_id))
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    if contact is None:
        return False
    lead = Lead.get_or_none((Lead.account == account_id) & (Lead.ad == contact.ad_id))
    if lead is None:
        return False
    now = clock.now()
    Lead.update(stage=REPONDU, updated_at=now).where(
        (Lead.id == lead.id) & Lead.stage.in_(_BEFORE_REPLY)
    ).execute()
    LeadEvent.insert(
        lead=lead.id, kind=REPLY_EVENT, text=text, at=now, inbound_event_id=event_id
    ).on_conflict_ignore().execute()
    return True
