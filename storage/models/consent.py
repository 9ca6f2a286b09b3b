"""Consent: the suppression list every send is checked against, and what comes back in."""

from __future__ import annotations

import re

from peewee import AutoField, CharField, IntegerField, TextField

from storage.models.base import BaseModel, UTCDateTimeField

# Why an address is suppressed.
OPT_OUT = "opt_out"  # the person wrote a stop word, or answered "stop" to the goodbye
UNSUBSCRIBE = "unsubscribe"  # an email unsubscribe link (RFC 8058 one-click, or its page)
BOUNCE = "bounce"
COMPLAINT = "complaint"
OPERATOR = "operator"  # `outreach suppress add`
REASONS = (OPT_OUT, UNSUBSCRIBE, BOUNCE, COMPLAINT, OPERATOR)

# Inbound events: where from, and what became of them.
WAHA = "waha"
UNSUBSCRIBE_LINK = "unsubscribe"
RECEIVED = "received"
HANDLED = "handled"
IGNORED = "ignored"
# Its handling kept failing until the retries ran out (the last error is its outcome).
FAILED = "failed"

_NOT_A_DIGIT = re.compile(r"\D")
# WhatsApp ids of a person: the number, then the server part (`c.us`, or `s.whatsapp.net`).
_PERSON_JID = re.compile(r"^\+?(\d+)(?::\d+)?@(c\.us|s\.whatsapp\.net)$", re.IGNORECASE)


def normalise_address(recipient: str) -> str:
    """The form a suppression and an outbox row are matched on, whatever the channel.

    A phone number or a person's WhatsApp id becomes its E.164 digits (``+33 6 12 34 56 78``,
    ``0033612345678`` and ``33612345678@c.us`` are all ``33612345678``); an email address is
    lower-cased; anything else (a WhatsApp group id) is kept lower-cased as it is. A national
    number (``06...``) keeps its digits: it has no country code to add, and no other number
    normalises to it.
    """
    text = recipient.strip()
    person = _PERSON_JID.match(text)
    if person:
        return person.group(1)
    if "@" in text:
        return text.lower()
    digits = _NOT_A_DIGIT.sub("", text)
    if not digits:
        return text.lower()
    if digits.startswith("00"):
        return digits[2:]
    return digits


class Suppression(BaseModel):
    """An address of an account that is never written to again, by any kind of work."""

    id = AutoField()
    account_id = IntegerField()
    # Where the suppression was heard ("whatsapp", "email", ...); it stops every channel.
    channel = CharField(max_length=32)
    address = CharField(max_length=320)
    reason = CharField(max_length=16)
    # What asked for it: an inbound event, a command, an outbox message.
    source = CharField(max_length=255)
    created_at = UTCDateTimeField()

    class Meta:
        table_name = "suppression"
        indexes = (
            (("account_id", "channel", "address"), True),
            # The claim's check: an address, in one account or (rows without one) any.
            (("address", "account_id"), False),
        )


class InboundEvent(BaseModel):
    """One event that came in (a WAHA message or ack, an unsubscribe), stored once."""

    id = AutoField()
    provider = CharField(max_length=32)
    # The provider's own id of the event: a second delivery of it is the same row.
    external_id = CharField(max_length=255)
    kind = CharField(max_length=32)
    payload = TextField()
    received_at = UTCDateTimeField()
    status = CharField(max_length=16, default=RECEIVED)
    # What handling it did, in a few words ("stop", "goodbye answer remind-later", ...).
    outcome = TextField(null=True)
    handled_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "inbound_event"
        indexes = (
            (("provider", "external_id"), True),
            (("status", "received_at"), False),
        )
