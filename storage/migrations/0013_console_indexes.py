"""Outbox indexes of the console's overview and of `/metrics`' sends per sender.

- ``account_id, status, finished_at, source, sender``: the overview's outbox of one account
  (open rows, rows finished today, today's sends by kind) and its senders paused (the account's
  rows waiting on each sender), read from the index alone;
- ``status, finished_at, channel, sender`` replaces ``status, finished_at, channel``: the rows
  finished today by channel and by sender, from one index (no more indexes to write than before).
"""

from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_index(
            "outbox_message", ("account_id", "status", "finished_at", "source", "sender"), False
        ),
        migrator.add_index("outbox_message", ("status", "finished_at", "channel", "sender"), False),
        migrator.drop_index("outbox_message", "outbox_message_status_finished_at_channel"),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.add_index("outbox_message", ("status", "finished_at", "channel"), False),
        migrator.drop_index("outbox_message", "outbox_message_status_finished_at_channel_sender"),
        migrator.drop_index(
            "outbox_message", "outbox_message_account_id_status_finished_at_source_sender"
        ),
    )
