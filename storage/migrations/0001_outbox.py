"""The outbox table (generated from a schema diff, then reviewed)."""

from peewee import *


def up(migrator, db):
    class OutboxMessage(Model):
        idempotency_key = CharField(unique=True)
        channel = CharField(max_length=32)
        recipient = CharField(max_length=320)
        body = TextField()
        media_url = TextField(null=True)
        media_mime = CharField(null=True, max_length=100)
        source = CharField(max_length=32, default="manual")
        status = CharField(max_length=16, default="queued")
        attempts = IntegerField(default=0)
        last_error = TextField(null=True)
        provider_message_id = CharField(null=True)
        created_at = DateTimeField()
        enqueued_at = DateTimeField(null=True)
        claimed_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "outbox_message"
            indexes = ((("status", "enqueued_at"), False),)

    db.create_tables([OutboxMessage])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("outbox_message"))
