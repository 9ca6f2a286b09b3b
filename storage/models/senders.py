"""Senders: what a recipient sees a message come from (a WAHA session, an SMTP from-address, a
webhook endpoint), with its pacing state.

A sender's name is ``<channel>:<identity>`` (``whatsapp:default``, ``email:team@example.com``).
Its settings are nullable overrides; a null one takes the channel's default from the
environment (worker.senders). The pacing state (the next free slot, the day's count, a pause)
is changed only by conditional updates on `version`, so every worker shares one sequence.
"""

from __future__ import annotations

from peewee import AutoField, CharField, FloatField, IntegerField, TextField

from storage.models.base import BaseModel, UTCDateTimeField


class Sender(BaseModel):
    id = AutoField()
    name = CharField(max_length=255, unique=True)
    channel = CharField(max_length=32)
    # The account whose messages on `channel` go out from this sender (None: no account's).
    account_id = IntegerField(null=True)
    # Overrides of the channel's defaults (None: the default).
    min_spacing_seconds = FloatField(null=True)
    max_spacing_seconds = FloatField(null=True)
    daily_cap = IntegerField(null=True)
    # Sending hours for messages of no account ("mon-sat 09:00-20:00"; None: the default rule).
    sending_hours = CharField(max_length=100, null=True)
    # The first time a new slot can be handed out: the end of the last slot reserved.
    next_slot_at = UTCDateTimeField(null=True)
    # When the last send was let go, then when it ended: the next waits its minimum from then.
    last_send_at = UTCDateTimeField(null=True)
    # The calendar day (ISO date, OUTREACH_SENDING_TIMEZONE) of `day_count`: slots reserved then.
    day = CharField(max_length=10, null=True)
    day_count = IntegerField(default=0)
    # A pause after a provider's signal (WAHA 463, HTTP 429) or an operator's command.
    paused_until = UTCDateTimeField(null=True)
    pause_reason = TextField(null=True)
    # Bumped by every change of the pacing state: the token of its conditional updates.
    version = IntegerField(default=0)
    created_at = UTCDateTimeField()

    class Meta:
        table_name = "sender"
        indexes = ((("account_id", "channel"), False),)
