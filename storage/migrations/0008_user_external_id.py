"""A user's id in the product that owns them: unique per account, so an import can update."""

from peewee import *


def up(migrator, db):
    migrator.migrate(
        migrator.add_column("app_user", "external_id", CharField(max_length=128, null=True)),
        migrator.add_index("app_user", ("account_id", "external_id"), True),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index("app_user", "app_user_account_id_external_id"),
        migrator.drop_column("app_user", "external_id"),
    )
