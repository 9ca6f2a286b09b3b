"""The outbox: one row per outbound message, claimed by its idempotency key."""

from __future__ import annotations

from peewee import AutoField, CharField, IntegerField, TextField

from storage.models.base import BaseModel, UTCDateTimeField

# Outbox statuses. `unknown` is a send that died mid-way: an operator decides.
QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
UNKNOWN = "unknown"
STATUSES = (QUEUED, SENDING, SENT, FAILED, UNKNOWN)
FINAL_STATUSES = (SENT, FAILED, UNKNOWN)


class OutboxMessage(BaseModel):
    id = AutoField()
    idempotency_key = CharField(max_length=255, unique=True)
    channel = CharField(max_length=32)
    recipient = CharField(max_length=320)
    body = TextField()
    media_url = TextField(null=True)
    media_mime = CharField(max_length=100, null=True)
    # What queued it: "engagement", "campaign", "hunt", "manual"; outcome handlers key on it.
    source = CharField(max_length=32, default="manual")
    status = CharField(max_length=16, default=QUEUED)
    attempts = IntegerField(default=0)
    last_error = TextField(null=True)
    provider_message_id = CharField(max_length=255, null=True)
    created_at = UTCDateTimeField()
    # Last time a delivery message was put on the broker for this row (the relay reads it).
    enqueued_at = UTCDateTimeField(null=True)
    # When the current send started; a row `sending` for too long died mid-send.
    claimed_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "outbox_message"
        indexes = ((("status", "enqueued_at"), False),)
