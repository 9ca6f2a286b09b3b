"""Senders and their pacing: the sender table, each outbox row's sender, not-before time and
sending hours, and sending hours on accounts and campaigns."""

from peewee import *


def up(migrator, db):
    class Sender(Model):
        name = CharField(max_length=255, unique=True)
        channel = CharField(max_length=32)
        account_id = IntegerField(null=True)
        min_spacing_seconds = FloatField(null=True)
        max_spacing_seconds = FloatField(null=True)
        daily_cap = IntegerField(null=True)
        sending_hours = CharField(max_length=100, null=True)
        next_slot_at = DateTimeField(null=True)
        last_send_at = DateTimeField(null=True)
        day = CharField(max_length=10, null=True)
        day_count = IntegerField(default=0)
        paused_until = DateTimeField(null=True)
        pause_reason = TextField(null=True)
        version = IntegerField(default=0)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "sender"
            indexes = ((("account_id", "channel"), False),)

    db.create_tables([Sender])
    migrator.migrate(
        # Null on rows written before: they go out from their channel's default sender.
        migrator.add_column("outbox_message", "sender", CharField(max_length=255, null=True)),
        migrator.add_column("outbox_message", "not_before", DateTimeField(null=True)),
        migrator.add_column(
            "outbox_message", "sending_hours", CharField(max_length=100, null=True)
        ),
        migrator.add_column("account", "sending_hours", CharField(max_length=100, null=True)),
        migrator.add_column("campaign", "sending_hours", CharField(max_length=100, null=True)),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_column("campaign", "sending_hours"),
        migrator.drop_column("account", "sending_hours"),
        migrator.drop_column("outbox_message", "sending_hours"),
        migrator.drop_column("outbox_message", "not_before"),
        migrator.drop_column("outbox_message", "sender"),
        migrator.drop_table("sender"),
    )
