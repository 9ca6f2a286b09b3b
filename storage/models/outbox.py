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
# The address opted out, unsubscribed or was suppressed: never sent, never enqueued.
SUPPRESSED = "suppressed"
STATUSES = (QUEUED, SENDING, SENT, FAILED, UNKNOWN, SUPPRESSED)
FINAL_STATUSES = (SENT, FAILED, UNKNOWN, SUPPRESSED)
# Source of the one message an address gets after it opted out: the confirmation of its stop.
CONSENT_SOURCE = "consent"


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
    # When the row's last delivery message was put on the broker, or is due when it was put
    # there with a delay (a deferred row): the relay re-enqueues a row only well after that.
    enqueued_at = UTCDateTimeField(null=True)
    # When the current send started; a row `sending` for too long died mid-send.
    claimed_at = UTCDateTimeField(null=True)
    finished_at = UTCDateTimeField(null=True)
    # The account the message is sent for (None: a message sent by hand for no account).
    account_id = IntegerField(null=True)
    # The recipient as suppressions are matched (storage.models.consent.normalise_address).
    address = CharField(max_length=320, null=True)
    # WhatsApp acks: the highest level heard (1 server, 2 device, 3 read, 4 played; -1 error).
    ack = IntegerField(null=True)
    delivered_at = UTCDateTimeField(null=True)
    read_at = UTCDateTimeField(null=True)
    # Who it goes out from (storage.models.senders; None: its channel's default sender).
    sender = CharField(max_length=255, null=True)
    # The slot the row holds on a paced sender: its delivery is due then, not before.
    not_before = UTCDateTimeField(null=True)
    # The campaign's sending hours, when they override the account's ("mon-sat 09:00-20:00").
    sending_hours = CharField(max_length=100, null=True)

    class Meta:
        table_name = "outbox_message"
        indexes = (
            (("status", "enqueued_at"), False),
            # Who we last wrote to at an address (an inbound reply's conversation).
            (("address", "id"), False),
            # An ack names the provider's id of our message.
            (("provider_message_id",), False),
            # `/metrics`: rows by status and channel, and today's sends by channel and sender,
            # from the index alone.
            (("status", "channel"), False),
            (("status", "finished_at", "channel", "sender"), False),
            # The console's overview: one account's outbox today, and its rows waiting on a
            # sender (migration 0013).
            (("account_id", "status", "finished_at", "source", "sender"), False),
        )
