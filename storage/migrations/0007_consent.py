"""Consent: the suppression list, inbound events, a lead's history, and on the outbox the
account, the normalised address and WhatsApp's delivery and read acks."""

import re

from peewee import *

# A frozen copy of storage.models.consent.normalise_address as of this migration.
_NOT_A_DIGIT = re.compile(r"\D")
_PERSON_JID = re.compile(r"^\+?(\d+)(?::\d+)?@(c\.us|s\.whatsapp\.net)$", re.IGNORECASE)
_BACKFILL_PAGE = 1000


def _normalise(recipient):
    text = recipient.strip()
    person = _PERSON_JID.match(text)
    if person:
        return person.group(1)
    if "@" in text:
        return text.lower()
    digits = _NOT_A_DIGIT.sub("", text)
    if not digits:
        return text.lower()
    return digits[2:] if digits.startswith("00") else digits


def up(migrator, db):
    class Lead(Model):
        class Meta:
            database = db
            table_name = "lead"

    class Suppression(Model):
        account_id = IntegerField()
        channel = CharField(max_length=32)
        address = CharField(max_length=320)
        reason = CharField(max_length=16)
        source = CharField(max_length=255)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "suppression"
            indexes = (
                (("account_id", "channel", "address"), True),
                (("address", "account_id"), False),
            )

    class InboundEvent(Model):
        provider = CharField(max_length=32)
        external_id = CharField(max_length=255)
        kind = CharField(max_length=32)
        payload = TextField()
        received_at = DateTimeField()
        status = CharField(max_length=16, default="received")
        outcome = TextField(null=True)
        handled_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "inbound_event"
            indexes = (
                (("provider", "external_id"), True),
                (("status", "received_at"), False),
            )

    class LeadEvent(Model):
        lead = ForeignKeyField(Lead, on_delete="CASCADE")
        kind = CharField(max_length=32)
        text = TextField(null=True)
        at = DateTimeField()
        inbound_event_id = IntegerField(null=True, unique=True)

        class Meta:
            database = db
            table_name = "lead_event"

    db.create_tables([Suppression, InboundEvent, LeadEvent])
    migrator.migrate(
        migrator.add_column("outbox_message", "account_id", IntegerField(null=True)),
        migrator.add_column("outbox_message", "address", CharField(max_length=320, null=True)),
        migrator.add_column("outbox_message", "ack", IntegerField(null=True)),
        migrator.add_column("outbox_message", "delivered_at", DateTimeField(null=True)),
        migrator.add_column("outbox_message", "read_at", DateTimeField(null=True)),
        migrator.add_index("outbox_message", ("address", "id"), False),
        migrator.add_index("outbox_message", ("provider_message_id",), False),
    )
    # Rows written before this migration get their address, page by page.
    last = 0
    while True:
        rows = db.execute_sql(
            "SELECT id, recipient FROM outbox_message WHERE id > %s ORDER BY id LIMIT %s"
            % (int(last), _BACKFILL_PAGE)
        ).fetchall()
        if not rows:
            break
        param = db.param
        for outbox_id, recipient in rows:
            db.execute_sql(
                f"UPDATE outbox_message SET address = {param} WHERE id = {param}",
                (_normalise(recipient), outbox_id),
            )
        last = rows[-1][0]


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("outbox_message", "outbox_message_address_id"),
        migrator.drop_index("outbox_message", "outbox_message_provider_message_id"),
        migrator.drop_column("outbox_message", "account_id"),
        migrator.drop_column("outbox_message", "address"),
        migrator.drop_column("outbox_message", "ack"),
        migrator.drop_column("outbox_message", "delivered_at"),
        migrator.drop_column("outbox_message", "read_at"),
    )
    for table in ("lead_event", "inbound_event", "suppression"):
        migrator.migrate(migrator.drop_table(table))
