"""Engagement (seed 004): user profiles, engagement states, their transitions and the daily runs."""

from __future__ import annotations

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from storage.models.accounts import User
from storage.models.base import BaseModel, UTCDateTimeField

# Engagement states.
ACTIVE = "active"
GOODBYE_SENT = "goodbye_sent"
REMIND_LATER = "remind_later"
DORMANT = "dormant"
STATES = (ACTIVE, GOODBYE_SENT, REMIND_LATER, DORMANT)

# Where a user wants to be reached: their own chat, or a group they share with us.
INDIVIDUAL = "individual"
GROUP = "group"
DESTINATIONS = (INDIVIDUAL, GROUP)

# What a daily run recorded for one user and one check.
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
OUTCOMES = (SUCCEEDED, FAILED, SKIPPED)


class UserProfile(BaseModel):
    id = AutoField()
    user = ForeignKeyField(User, unique=True, backref="profiles", on_delete="CASCADE")
    preferred_destination = CharField(max_length=16, default=INDIVIDUAL)
    whatsapp_jid = CharField(max_length=128, null=True)
    group_jid = CharField(max_length=128, null=True)
    locale = CharField(max_length=16, default="en")
    reengagement_opt_out = BooleanField(default=False)
    created_at = UTCDateTimeField()

    class Meta:
        table_name = "user_profile"
        # Who wrote to us: a member found by the WhatsApp id a reply came from.
        indexes = ((("whatsapp_jid",), False),)


class EngagementState(BaseModel):
    id = AutoField()
    user = ForeignKeyField(User, unique=True, backref="engagement_states", on_delete="CASCADE")
    state = CharField(max_length=16, default=ACTIVE)
    last_activity_at = UTCDateTimeField()
    goodbye_expires_at = UTCDateTimeField(null=True)
    remind_at = UTCDateTimeField(null=True)
    # Bumped by every change: a transition is conditional on the version it read.
    version = IntegerField(default=0)
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "engagement_state"
        # One per sweep query: equality on state, range on the timestamp, user id for the keyset.
        indexes = (
            (("state", "last_activity_at", "user"), False),
            (("state", "goodbye_expires_at", "user"), False),
            (("state", "remind_at", "user"), False),
        )


class EngagementRun(BaseModel):
    """One daily run (seed 004's JobResult), added up across every worker."""

    id = AutoField()
    fire_time = UTCDateTimeField()
    started_at = UTCDateTimeField()
    sweep_finished_at = UTCDateTimeField(null=True)
    # Messages the sweep enqueued; known once the sweep has finished.
    expected = IntegerField(null=True)
    # Users the sweep itself recorded as skipped (opted out), not enqueued.
    skipped_at_sweep = IntegerField(default=0)
    # Set once every enqueued message has an outcome: the time of the last one.
    finished_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "engagement_run"


class EngagementTransition(BaseModel):
    """The audit trail: every applied trigger, whoever applied it."""

    id = AutoField()
    # Indexed by (user, at) below.
    user = ForeignKeyField(User, backref="engagement_transitions", on_delete="CASCADE", index=False)
    from_state = CharField(max_length=16)
    to_state = CharField(max_length=16)
    trigger = CharField(max_length=32)
    at = UTCDateTimeField()
    run = ForeignKeyField(EngagementRun, null=True, on_delete="SET NULL")

    class Meta:
        table_name = "engagement_transition"
        indexes = ((("user", "at"), False),)


class EngagementOutcome(BaseModel):
    """One row per (run, user, check type): a redelivered message cannot count twice."""

    id = AutoField()
    # Indexed by the unique (run, user, check) below.
    run = ForeignKeyField(EngagementRun, backref="outcomes", on_delete="CASCADE", index=False)
    # Not a foreign key: the run's record stays whole even if a user is deleted meanwhile.
    user_id = IntegerField()
    check_type = CharField(max_length=32)
    outcome = CharField(max_length=16)
    detail = TextField(null=True)
    recorded_at = UTCDateTimeField()

    class Meta:
        table_name = "engagement_outcome"
        indexes = ((("run", "user_id", "check_type"), True),)
