"""Campaigns: contact lists, templates, media, campaigns, their recipients and batch history.

A campaign sends one template to every contact of a list, ``daily_send_limit`` a batch, one
batch every 24 h. Its recipients are materialised once, at the start, one row per contact, so
progress is a query and resuming is taking the next pending rows.
"""

from __future__ import annotations

from peewee import AutoField, CharField, ForeignKeyField, IntegerField, TextField

from storage.models.accounts import User
from storage.models.base import BaseModel, UTCDateTimeField

# Campaign statuses (the allowed moves between them are in worker.campaigns.lifecycle).
DRAFT = "draft"
SCHEDULED = "scheduled"
RUNNING = "running"
PAUSED = "paused"
COMPLETED = "completed"
CANCELLED = "cancelled"
FAILED = "failed"
CAMPAIGN_STATUSES = (DRAFT, SCHEDULED, RUNNING, PAUSED, COMPLETED, CANCELLED, FAILED)

# Recipient statuses: pending (not taken yet), queued (in the outbox), then sent or failed.
PENDING = "pending"
QUEUED = "queued"
SENT = "sent"
RECIPIENT_FAILED = "failed"
# The contact's address is suppressed (opted out, unsubscribed): not sent, and done.
SKIPPED = "skipped"
RECIPIENT_STATUSES = (PENDING, QUEUED, SENT, RECIPIENT_FAILED, SKIPPED)
OUTSTANDING = (PENDING, QUEUED)

DEFAULT_DAILY_SEND_LIMIT = 5
DEFAULT_NAME_VALUE = "there"


class ContactList(BaseModel):
    id = AutoField()
    # Operators name lists on the command line (`outreach contacts import NAME file.csv`).
    name = CharField(max_length=200, unique=True)
    created_at = UTCDateTimeField()

    class Meta:
        table_name = "contact_list"


class Contact(BaseModel):
    id = AutoField()
    # Covered by the (contact_list, id) index below, which also serves keyset pages.
    contact_list = ForeignKeyField(
        ContactList, backref="contacts", on_delete="CASCADE", index=False
    )
    contact_list_id: int
    phone = CharField(max_length=32, null=True)
    email = CharField(max_length=320, null=True)
    first_name = CharField(max_length=200, null=True)
    created_at = UTCDateTimeField()

    class Meta:
        table_name = "contact"
        indexes = (
            (("contact_list", "id"), False),
            # One person once per list: a duplicate would be messaged twice.
            (("contact_list", "phone"), True),
            (("contact_list", "email"), True),
        )


class MessageTemplate(BaseModel):
    id = AutoField()
    owner = ForeignKeyField(User, backref="message_templates", on_delete="CASCADE")
    owner_id: int
    name = CharField(max_length=200)
    # Checked when saved: only {Name} (any letter case) may appear between braces.
    body = TextField()
    created_at = UTCDateTimeField()

    class Meta:
        table_name = "message_template"


class MediaItem(BaseModel):
    id = AutoField()
    owner = ForeignKeyField(User, backref="media_items", on_delete="CASCADE")
    owner_id: int
    # A URL or a storage path, handed to the channel as it is.
    location = TextField()
    mime_type = CharField(max_length=100)
    created_at = UTCDateTimeField()

    class Meta:
        table_name = "media_item"


class Campaign(BaseModel):
    id = AutoField()
    owner = ForeignKeyField(User, backref="campaigns", on_delete="CASCADE")
    name = CharField(max_length=200)
    channel = CharField(max_length=32)
    template = ForeignKeyField(MessageTemplate, on_delete="RESTRICT")
    media = ForeignKeyField(MediaItem, null=True, on_delete="RESTRICT")
    contact_list = ForeignKeyField(ContactList, on_delete="RESTRICT")
    owner_id: int
    template_id: int
    media_id: int | None
    contact_list_id: int
    daily_send_limit = IntegerField(default=DEFAULT_DAILY_SEND_LIMIT)
    # Replaces {Name} for a contact whose first name is empty.
    default_name_value = CharField(max_length=200, default=DEFAULT_NAME_VALUE)
    status = CharField(max_length=16, default=DRAFT)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()
    started_at = UTCDateTimeField(null=True)
    completed_at = UTCDateTimeField(null=True)
    first_batch_sent_at = UTCDateTimeField(null=True)
    # When the next batch is due; null when none is (draft, completed, cancelled, failed).
    next_batch_at = UTCDateTimeField(null=True)
    # The number of the last batch that started (0 before the first).
    current_batch_number = IntegerField(default=0)
    # Contacts of the list up to this id, fixed at the start: later ones are not included.
    contacts_upto_id = IntegerField(null=True)
    # Set once every recipient row exists; batches wait for it.
    recipients_ready_at = UTCDateTimeField(null=True)
    recipients_total = IntegerField(null=True)
    last_error = TextField(null=True)
    # Overrides the account's sending hours for this campaign's messages (None: the account's).
    sending_hours = CharField(max_length=100, null=True)

    class Meta:
        table_name = "campaign"
        indexes = ((("status", "next_batch_at"), False),)


class CampaignRecipient(BaseModel):
    id = AutoField()
    # Both covered by the composite indexes below (fewer indexes: faster materialisation).
    campaign = ForeignKeyField(Campaign, backref="recipients", on_delete="CASCADE", index=False)
    contact = ForeignKeyField(Contact, on_delete="CASCADE", index=False)
    campaign_id: int
    contact_id: int
    status = CharField(max_length=16, default=PENDING)
    batch_number = IntegerField(null=True)
    error = TextField(null=True)
    queued_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "campaign_recipient"
        indexes = (
            (("campaign", "contact"), True),
            # The next pending recipients in contact order; progress counts per status.
            (("campaign", "status", "contact"), False),
        )


class CampaignBatch(BaseModel):
    """One batch of one campaign: claimed by its row (unique campaign + number)."""

    id = AutoField()
    campaign = ForeignKeyField(Campaign, backref="batches", on_delete="CASCADE", index=False)
    campaign_id: int
    number = IntegerField()
    scheduled_at = UTCDateTimeField()
    # Last time its message was put on the broker (a lost message is enqueued again).
    enqueued_at = UTCDateTimeField()
    started_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)
    # Recipients this batch took (never more than the campaign's daily_send_limit); how many of
    # them were sent or failed is read from their recipient rows.
    selected = IntegerField(default=0)
    # Recipients still pending when the batch finished.
    remaining = IntegerField(null=True)

    class Meta:
        table_name = "campaign_batch"
        indexes = (
            (("campaign", "number"), True),
            (("finished_at", "enqueued_at"), False),
        )
