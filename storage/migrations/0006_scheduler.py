"""The scheduler's last fire of each schedule."""

from peewee import *


def up(migrator, db):
    class ScheduleLastFire(Model):
        schedule = CharField(max_length=100, primary_key=True)
        fire_time = DateTimeField()
        wall_time = CharField(max_length=32)
        timezone = CharField(max_length=64)
        started_at = DateTimeField()
        finished_at = DateTimeField()
        result = TextField(null=True)
        error = TextField(null=True)
        fired_by = CharField(max_length=200)

        class Meta:
            database = db
            table_name = "schedule_last_fire"

    db.create_tables([ScheduleLastFire])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("schedule_last_fire"))
