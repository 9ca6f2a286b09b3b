"""Indexes that find the member behind an incoming reply: by phone within an account, and by
WhatsApp id (each a lookup where the reply's handler scanned every user)."""

from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_index("app_user", ("account_id", "phone"), False),
        migrator.add_index("user_profile", ("whatsapp_jid",), False),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("app_user", "app_user_account_id_phone"),
        migrator.drop_index("user_profile", "user_profile_whatsapp_jid"),
    )
