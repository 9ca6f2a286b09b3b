"""Operators: a user of an account who logs in to the console has a password hash (argon2)."""

from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("app_user", "password_hash", CharField(max_length=255, null=True)),
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("app_user", "password_hash"))
