"""Accounts and users (generated from a schema diff, then reviewed)."""

from peewee import *


def up(migrator, db):
    class Account(Model):
        name = CharField(max_length=200)
        timezone = CharField(max_length=64, default="UTC")
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "account"

    db.create_tables([Account])

    class User(Model):
        account = ForeignKeyField(Account, on_delete="CASCADE")
        name = CharField(max_length=200)
        email = CharField(null=True, max_length=320)
        phone = CharField(null=True, max_length=32)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "app_user"

    db.create_tables([User])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("app_user"))
    migrator.migrate(migrator.drop_table("account"))
