"""Engagement: user profiles, engagement states, transitions, daily runs and their outcomes."""

from peewee import *


def up(migrator, db):
    class User(Model):
        class Meta:
            database = db
            table_name = "app_user"

    class UserProfile(Model):
        user = ForeignKeyField(User, unique=True, on_delete="CASCADE")
        preferred_destination = CharField(max_length=16, default="individual")
        whatsapp_jid = CharField(null=True, max_length=128)
        group_jid = CharField(null=True, max_length=128)
        locale = CharField(max_length=16, default="en")
        reengagement_opt_out = BooleanField(default=False)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "user_profile"

    class EngagementState(Model):
        user = ForeignKeyField(User, unique=True, on_delete="CASCADE")
        state = CharField(max_length=16, default="active")
        last_activity_at = DateTimeField()
        goodbye_expires_at = DateTimeField(null=True)
        remind_at = DateTimeField(null=True)
        version = IntegerField(default=0)
        updated_at = DateTimeField()

        class Meta:
            database = db
            table_name = "engagement_state"
            indexes = (
                (("state", "last_activity_at", "user"), False),
                (("state", "goodbye_expires_at", "user"), False),
                (("state", "remind_at", "user"), False),
            )

    class EngagementRun(Model):
        fire_time = DateTimeField()
        started_at = DateTimeField()
        sweep_finished_at = DateTimeField(null=True)
        expected = IntegerField(null=True)
        skipped_at_sweep = IntegerField(default=0)
        finished_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "engagement_run"

    class EngagementTransition(Model):
        user = ForeignKeyField(User, on_delete="CASCADE", index=False)
        from_state = CharField(max_length=16)
        to_state = CharField(max_length=16)
        trigger = CharField(max_length=32)
        at = DateTimeField()
        run = ForeignKeyField(EngagementRun, null=True, on_delete="SET NULL")

        class Meta:
            database = db
            table_name = "engagement_transition"
            indexes = ((("user", "at"), False),)

    class EngagementOutcome(Model):
        run = ForeignKeyField(EngagementRun, on_delete="CASCADE", index=False)
        user_id = IntegerField()
        check_type = CharField(max_length=32)
        outcome = CharField(max_length=16)
        detail = TextField(null=True)
        recorded_at = DateTimeField()

        class Meta:
            database = db
            table_name = "engagement_outcome"
            indexes = ((("run", "user_id", "check_type"), True),)

    db.create_tables(
        [UserProfile, EngagementState, EngagementRun, EngagementTransition, EngagementOutcome]
    )


def down(migrator, db):
    for table in (
        "engagement_outcome",
        "engagement_transition",
        "engagement_run",
        "engagement_state",
        "user_profile",
    ):
        migrator.migrate(migrator.drop_table(table))
