"""API tokens (stored hashed), and the outbox indexes that `/metrics` counts with."""

from peewee import *


def up(migrator, db):
    class Account(Model):
        class Meta:
            database = db
            table_name = "account"

    class ApiToken(Model):
        account = ForeignKeyField(Account, on_delete="CASCADE", index=False)
        name = CharField(max_length=100)
        token_id = CharField(max_length=32, unique=True)
        hash = CharField(max_length=64)
        created_at = DateTimeField()
        last_used_at = DateTimeField(null=True)
        revoked_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "api_token"
            indexes = ((("account", "name"), True),)

    db.create_tables([ApiToken])
    # Rows by status and channel, and today's sends by channel: read from the index alone.
    migrator.migrate(
        migrator.add_index("outbox_message", ("status", "channel"), False),
        migrator.add_index("outbox_message", ("status", "finished_at", "channel"), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("outbox_message", "outbox_message_status_channel"),
        migrator.drop_index("outbox_message", "outbox_message_status_finished_at_channel"),
        migrator.drop_table("api_token"),
    )
