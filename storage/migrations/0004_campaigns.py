"""Campaigns: contact lists, contacts, templates, media, campaigns, recipients and batches."""

from peewee import *


def up(migrator, db):
    class User(Model):
        class Meta:
            database = db
            legacy_table_names = False
            table_name = "app_user"

    class ContactList(Model):
        name = CharField(max_length=200, unique=True)
        created_at = DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "contact_list"

    class Contact(Model):
        contact_list = ForeignKeyField(ContactList, on_delete="CASCADE", index=False)
        phone = CharField(null=True, max_length=32)
        email = CharField(null=True, max_length=320)
        first_name = CharField(null=True, max_length=200)
        created_at = DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "contact"
            indexes = (
                (("contact_list", "id"), False),
                (("contact_list", "phone"), True),
                (("contact_list", "email"), True),
            )

    class MessageTemplate(Model):
        owner = ForeignKeyField(User, on_delete="CASCADE")
        name = CharField(max_length=200)
        body = TextField()
        created_at = DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "message_template"

    class MediaItem(Model):
        owner = ForeignKeyField(User, on_delete="CASCADE")
        location = TextField()
        mime_type = CharField(max_length=100)
        created_at = DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "media_item"

    class Campaign(Model):
        owner = ForeignKeyField(User, on_delete="CASCADE")
        name = CharField(max_length=200)
        channel = CharField(max_length=32)
        template = ForeignKeyField(MessageTemplate, on_delete="RESTRICT")
        media = ForeignKeyField(MediaItem, null=True, on_delete="RESTRICT")
        contact_list = ForeignKeyField(ContactList, on_delete="RESTRICT")
        daily_send_limit = IntegerField(default=5)
        default_name_value = CharField(max_length=200, default="there")
        status = CharField(max_length=16, default="draft")
        created_at = DateTimeField()
        updated_at = DateTimeField()
        started_at = DateTimeField(null=True)
        completed_at = DateTimeField(null=True)
        first_batch_sent_at = DateTimeField(null=True)
        next_batch_at = DateTimeField(null=True)
        current_batch_number = IntegerField(default=0)
        contacts_upto_id = IntegerField(null=True)
        recipients_ready_at = DateTimeField(null=True)
        recipients_total = IntegerField(null=True)
        last_error = TextField(null=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "campaign"
            indexes = ((("status", "next_batch_at"), False),)

    class CampaignRecipient(Model):
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE", index=False)
        contact = ForeignKeyField(Contact, on_delete="CASCADE", index=False)
        status = CharField(max_length=16, default="pending")
        batch_number = IntegerField(null=True)
        error = TextField(null=True)
        queued_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "campaign_recipient"
            indexes = (
                (("campaign", "contact"), True),
                (("campaign", "status", "contact"), False),
            )

    class CampaignBatch(Model):
        campaign = ForeignKeyField(Campaign, on_delete="CASCADE", index=False)
        number = IntegerField()
        scheduled_at = DateTimeField()
        enqueued_at = DateTimeField()
        started_at = DateTimeField(null=True)
        finished_at = DateTimeField(null=True)
        selected = IntegerField(default=0)
        remaining = IntegerField(null=True)

        class Meta:
            database = db
            legacy_table_names = False
            table_name = "campaign_batch"
            indexes = (
                (("campaign", "number"), True),
                (("finished_at", "enqueued_at"), False),
            )

    db.create_tables(
        [
            ContactList,
            Contact,
            MessageTemplate,
            MediaItem,
            Campaign,
            CampaignRecipient,
            CampaignBatch,
        ]
    )


def down(migrator, db):
    for table in (
        "campaign_batch",
        "campaign_recipient",
        "campaign",
        "media_item",
        "message_template",
        "contact",
        "contact_list",
    ):
        migrator.migrate(migrator.drop_table(table))
