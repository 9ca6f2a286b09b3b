"""Hunts: ads, hunts, channel credits, daily pacing, sweep runs, leads and contacted ads."""

from peewee import *


def up(migrator, db):
    class Account(Model):
        class Meta:
            database = db
            table_name = "account"

    class User(Model):
        class Meta:
            database = db
            table_name = "app_user"

    class OutboxMessage(Model):
        class Meta:
            database = db
            table_name = "outbox_message"

    class Ad(Model):
        source = CharField(max_length=32)
        external_id = CharField(max_length=128)
        title = CharField(max_length=500)
        price = IntegerField(null=True)
        postal_code = CharField(max_length=5)
        city = CharField(null=True, max_length=200)
        category = CharField(null=True, max_length=64)
        sub_type = CharField(null=True, max_length=64)
        brand = CharField(null=True, max_length=64)
        owner_name = CharField(null=True, max_length=200)
        owner_phone = CharField(null=True, max_length=32)
        owner_email = CharField(null=True, max_length=320)
        url = TextField()
        published_at = DateTimeField()
        imported_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "ad"
            indexes = (
                (("source", "external_id"), True),
                (("postal_code", "published_at", "brand", "price"), False),
                (("sub_type", "postal_code", "published_at", "brand", "price"), False),
            )

    class Hunt(Model):
        account = ForeignKeyField(Account, on_delete="CASCADE")
        owner = ForeignKeyField(User, on_delete="CASCADE")
        name = CharField(max_length=200)
        status = CharField(max_length=16, default="active")
        auto_refresh = BooleanField(default=True)
        daily_pacing_limit = IntegerField(null=True)
        channels = TextField()
        message_template = TextField()
        criteria = TextField()
        last_scan_at = DateTimeField(null=True)
        created_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "hunt"
            indexes = ((("status", "auto_refresh"), False),)

    class HuntChannelCredit(Model):
        hunt = ForeignKeyField(Hunt, on_delete="CASCADE", index=False)
        channel = CharField(max_length=32)
        allocated = IntegerField(default=0)
        reserved = IntegerField(default=0)
        consumed = IntegerField(default=0)

        class Meta:
            database = db
            table_name = "hunt_channel_credit"
            indexes = ((("hunt", "channel"), True),)

    class HuntPacing(Model):
        hunt = ForeignKeyField(Hunt, on_delete="CASCADE", index=False)
        day = DateField()
        channel = CharField(max_length=32)
        count = IntegerField(default=0)

        class Meta:
            database = db
            table_name = "hunt_pacing"
            indexes = ((("hunt", "day", "channel"), True),)

    class HuntRun(Model):
        hunt = ForeignKeyField(Hunt, on_delete="CASCADE", index=False)
        day = DateField()
        claim = CharField(max_length=32)
        enqueued_at = DateTimeField()
        finished_at = DateTimeField(null=True)
        contacted = IntegerField(null=True)
        error = TextField(null=True)

        class Meta:
            database = db
            table_name = "hunt_run"
            indexes = ((("hunt", "day"), True), (("claim",), False))

    class Lead(Model):
        account = ForeignKeyField(Account, on_delete="CASCADE", index=False)
        hunt = ForeignKeyField(Hunt, on_delete="CASCADE", index=False)
        ad = ForeignKeyField(Ad, on_delete="CASCADE")
        stage = CharField(max_length=32, default="nouveau")
        position = IntegerField(default=0)
        created_at = DateTimeField()
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "lead"
            indexes = ((("account", "ad"), True), (("hunt", "stage"), False))

    class ContactedAd(Model):
        hunt = ForeignKeyField(Hunt, on_delete="CASCADE", index=False)
        ad = ForeignKeyField(Ad, on_delete="CASCADE")
        channel = CharField(max_length=32)
        outbox_message = ForeignKeyField(OutboxMessage, unique=True, on_delete="CASCADE")
        day = DateField()
        status = CharField(max_length=16, default="queued")
        contacted_at = DateTimeField()
        finished_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "contacted_ad"
            indexes = ((("hunt", "ad"), True), (("hunt", "day"), False))

    db.create_tables([Ad, Hunt, HuntChannelCredit, HuntPacing, HuntRun, Lead, ContactedAd])


def down(migrator, db):
    for table in (
        "contacted_ad",
        "lead",
        "hunt_run",
        "hunt_pacing",
        "hunt_channel_credit",
        "hunt",
        "ad",
    ):
        migrator.migrate(migrator.drop_table(table))
