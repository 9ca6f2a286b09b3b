"""Hunts: imported ads, the hunts that match them, and what came of each contact.

A hunt belongs to an account and contacts the owners of new ads matching its criteria, within a
daily pacing limit (counted per account-local day in ``hunt_pacing``) and per-channel credits.
Each contact is a lead of the account (unique per account and ad) and a contacted-ad record.
"""

from __future__ import annotations

import json
from typing import Any

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    DateField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from storage.models.accounts import Account, User
from storage.models.base import BaseModel, UTCDateTimeField
from storage.models.outbox import OutboxMessage

# Hunt statuses: only active hunts are swept and run.
ACTIVE = "active"
PAUSED = "paused"
ARCHIVED = "archived"
HUNT_STATUSES = (ACTIVE, PAUSED, ARCHIVED)

# Lead stages (the first two columns of the account's pipeline).
NOUVEAU = "nouveau"
CONTACTE = "contacte"
# The owner answered the first message.
REPONDU = "repondu"
LEAD_STAGES = (NOUVEAU, CONTACTE, REPONDU)

# What became of a contacted ad's message (mirrors the outbox row's final status).
CONTACT_QUEUED = "queued"
CONTACT_SENT = "sent"
CONTACT_FAILED = "failed"
CONTACT_UNKNOWN = "unknown"
# The owner's address was suppressed after the contact was queued: nothing was sent.
CONTACT_SUPPRESSED = "suppressed"

# The pacing row that counts every channel of a hunt together (the limit applies to it).
ALL_CHANNELS = "*"


class JSONTextField(TextField):
    """JSON kept as text: the same column type on SQLite and PostgreSQL."""

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def python_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.loads(value)


class Ad(BaseModel):
    """A classified ad as the scraper found it; upserted on (source, external_id)."""

    id = AutoField()
    source = CharField(max_length=32)
    external_id = CharField(max_length=128)
    title = CharField(max_length=500)
    # Whole euros; null when the ad shows no price (it never matches a price range).
    price = IntegerField(null=True)
    postal_code = CharField(max_length=5)
    city = CharField(max_length=200, null=True)
    category = CharField(max_length=64, null=True)
    # Sub-type and brand are lower-cased on import, so criteria compare them exactly.
    sub_type = CharField(max_length=64, null=True)
    brand = CharField(max_length=64, null=True)
    owner_name = CharField(max_length=200, null=True)
    owner_phone = CharField(max_length=32, null=True)
    owner_email = CharField(max_length=320, null=True)
    url = TextField()
    published_at = UTCDateTimeField()
    imported_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "ad"
        indexes = (
            (("source", "external_id"), True),
            # Matching: location ranges and a publication window, with or without sub-types;
            # brand and price are in the key so that they are checked in the index, before any
            # table row is read. No index on published_at alone: the planner would walk it
            # backwards for "newest first" and, with narrow criteria, read most of the table.
            (("postal_code", "published_at", "brand", "price"), False),
            (("sub_type", "postal_code", "published_at", "brand", "price"), False),
            # Brands without sub-types: the brand sought first, not checked over every ad of
            # the locations (migration 0014).
            (("brand", "postal_code", "published_at", "price"), False),
        )


class Hunt(BaseModel):
    id = AutoField()
    account = ForeignKeyField(Account, backref="hunts", on_delete="CASCADE")
    owner = ForeignKeyField(User, backref="hunts", on_delete="CASCADE")
    account_id: int
    owner_id: int
    name = CharField(max_length=200)
    status = CharField(max_length=16, default=ACTIVE)
    auto_refresh = BooleanField(default=True)
    # Contacts a day (account-local day); null means no pacing limit.
    daily_pacing_limit = IntegerField(null=True)
    # Channel names in order of preference, e.g. ["whatsapp", "email"].
    channels = JSONTextField()
    message_template = TextField()
    # The validated, normalised criteria (see worker.hunts.criteria).
    criteria = JSONTextField()
    last_scan_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "hunt"
        indexes = ((("status", "auto_refresh"), False),)


class HuntChannelCredit(BaseModel):
    """Credits of one channel of a hunt: available = allocated - reserved - consumed.

    A contact reserves a credit when its message is queued; the delivery's outcome turns the
    reservation into consumption (sent) or gives it back (failed).
    """

    id = AutoField()
    hunt = ForeignKeyField(Hunt, backref="credits", on_delete="CASCADE", index=False)
    hunt_id: int
    channel = CharField(max_length=32)
    allocated = IntegerField(default=0)
    reserved = IntegerField(default=0)
    consumed = IntegerField(default=0)

    class Meta:
        table_name = "hunt_channel_credit"
        indexes = ((("hunt", "channel"), True),)


class HuntPacing(BaseModel):
    """Contacts of a hunt on one account-local day: one row per channel, and one for all (`*`)."""

    id = AutoField()
    hunt = ForeignKeyField(Hunt, backref="pacing", on_delete="CASCADE", index=False)
    hunt_id: int
    day = DateField()
    channel = CharField(max_length=32)
    count = IntegerField(default=0)

    class Meta:
        table_name = "hunt_pacing"
        indexes = ((("hunt", "day", "channel"), True),)


class HuntRun(BaseModel):
    """The sweep's claim of one hunt for one account-local day: one message per hunt a day."""

    id = AutoField()
    hunt = ForeignKeyField(Hunt, backref="runs", on_delete="CASCADE", index=False)
    hunt_id: int
    day = DateField()
    # The sweep call that claimed the row (so it knows which rows it may enqueue).
    claim = CharField(max_length=32)
    enqueued_at = UTCDateTimeField()
    finished_at = UTCDateTimeField(null=True)
    contacted = IntegerField(null=True)
    # Why the run's message ended in the dead-letter queue, for an operator.
    error = TextField(null=True)

    class Meta:
        table_name = "hunt_run"
        indexes = ((("hunt", "day"), True), (("claim",), False))


class Lead(BaseModel):
    id = AutoField()
    account = ForeignKeyField(Account, backref="leads", on_delete="CASCADE", index=False)
    hunt = ForeignKeyField(Hunt, backref="leads", on_delete="CASCADE", index=False)
    ad = ForeignKeyField(Ad, backref="leads", on_delete="CASCADE")
    account_id: int
    hunt_id: int
    ad_id: int
    stage = CharField(max_length=32, default=NOUVEAU)
    position = IntegerField(default=0)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "lead"
        indexes = ((("account", "ad"), True), (("hunt", "stage"), False))


class ContactedAd(BaseModel):
    """One first message to an ad's owner: which hunt, channel, day and outbox row."""

    id = AutoField()
    hunt = ForeignKeyField(Hunt, backref="contacted_ads", on_delete="CASCADE", index=False)
    ad = ForeignKeyField(Ad, backref="contacts", on_delete="CASCADE")
    channel = CharField(max_length=32)
    outbox_message = ForeignKeyField(OutboxMessage, unique=True, on_delete="CASCADE")
    hunt_id: int
    ad_id: int
    outbox_message_id: int
    # The account-local day whose pacing slot this contact took (a failure gives it back).
    day = DateField()
    status = CharField(max_length=16, default=CONTACT_QUEUED)
    contacted_at = UTCDateTimeField()
    finished_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "contacted_ad"
        indexes = ((("hunt", "ad"), True), (("hunt", "day"), False))


class LeadEvent(BaseModel):
    """A lead's history: what the owner wrote back, and when."""

    id = AutoField()
    lead = ForeignKeyField(Lead, backref="events", on_delete="CASCADE")
    kind = CharField(max_length=32)
    text = TextField(null=True)
    at = UTCDateTimeField()
    # The inbound event it came from: a second delivery of the event adds nothing.
    inbound_event_id = IntegerField(null=True, unique=True)

    class Meta:
        table_name = "lead_event"
