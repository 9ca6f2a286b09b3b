"""What the scheduler runs, and when: a cron expression in a time zone, and a job.

A job is a function named by its dotted path, called with the fire time (aware UTC) and
returning a small dict of what it enqueued. It is imported when it fires, not before, so the
scheduler starts even when a feature's module is missing (that fire then logs an error).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from storage.errors import ConfigurationError
from storage.settings import Settings

Job = Callable[[datetime], dict[str, Any]]

# A daily sweep missed by less than this (a deploy, a crash) still runs when the scheduler starts.
DAILY_CATCH_UP = timedelta(hours=6)
# The campaign tick and the relay pick up everything due anyway: a short window is enough.
CAMPAIGNS_CATCH_UP = timedelta(minutes=15)
RELAY_CATCH_UP = timedelta(minutes=5)

ENGAGEMENT_JOB = "producers.engagement.run_daily"
HUNTS_JOB = "producers.hunts.sweep"
CAMPAIGNS_JOB = "producers.campaigns.tick"
RELAY_JOB = "producers.scheduler.jobs.outbox_relay"
RELAY_CRON = "* * * * *"


class JobUnavailable(ConfigurationError):
    """A job's module or function cannot be found (a feature not installed yet, a typo)."""


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    job: str
    timezone: str = "UTC"
    # A fire missed by at most this much runs once when the scheduler starts; older ones never.
    catch_up: timedelta = timedelta(0)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cron": self.cron,
            "timezone": self.timezone,
            "catch_up_seconds": int(self.catch_up.total_seconds()),
            "job": self.job,
        }


def validate(schedule: Schedule) -> Schedule:
    """The schedule itself, or a one-line ConfigurationError naming what is wrong."""
    where = f"schedule {schedule.name!r}"
    if not schedule.name or len(schedule.name) > 100 or ":" in schedule.name:
        raise ConfigurationError(f"{where}: a name is 1 to 100 characters, without ':'")
    fields = schedule.cron.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(schedule.cron):
        raise ConfigurationError(
            f"{where}: {schedule.cron!r} is not a cron expression "
            "(five fields, or six with seconds last)"
        )
    try:
        croniter(schedule.cron, datetime(2000, 1, 1)).get_next(datetime)  # noqa: DTZ001
    except CroniterBadDateError:
        raise ConfigurationError(f"{where}: {schedule.cron!r} never fires") from None
    try:
        schedule.zone  # noqa: B018  (resolving the zone is the check)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"{where}: unknown time zone {schedule.timezone!r}") from None
    if schedule.catch_up < timedelta(0):
        raise ConfigurationError(f"{where}: the catch-up window cannot be negative")
    module, _, attribute = schedule.job.rpartition(".")
    if not module or not attribute:
        raise ConfigurationError(f"{where}: job {schedule.job!r} is not a dotted path")
    return schedule


def default_schedules(settings: Settings) -> list[Schedule]:
    return [
        Schedule("engagement", settings.engagement_cron, ENGAGEMENT_JOB, "UTC", DAILY_CATCH_UP),
        Schedule("hunts", settings.hunts_cron, HUNTS_JOB, settings.hunts_timezone, DAILY_CATCH_UP),
        Schedule("campaigns", settings.campaigns_cron, CAMPAIGNS_JOB, "UTC", CAMPAIGNS_CATCH_UP),
        Schedule("outbox-relay", RELAY_CRON, RELAY_JOB, "UTC", RELAY_CATCH_UP),
    ]


def schedules_from_json(text: str, source: str = "schedules") -> list[Schedule]:
    """A JSON list of {name, cron, job, timezone?, catch_up_seconds?}."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{source}: not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, list) or not data:
        raise ConfigurationError(f"{source}: expected a non-empty JSON list of schedules")
    schedules = []
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not {"name", "cron", "job"} <= item.keys():
            raise ConfigurationError(f"{source}: entry {index} needs name, cron and job")
        unknown = item.keys() - {"name", "cron", "job", "timezone", "catch_up_seconds"}
        if unknown:
            raise ConfigurationError(f"{source}: entry {index}: unknown keys {sorted(unknown)}")
        catch_up = item.get("catch_up_seconds", 0)
        if not isinstance(catch_up, int | float) or isinstance(catch_up, bool):
            raise ConfigurationError(f"{source}: entry {index}: catch_up_seconds is a number")
        schedule = Schedule(
            name=str(item["name"]),
            cron=str(item["cron"]),
            job=str(item["job"]),
            timezone=str(item.get("timezone", "UTC")),
            catch_up=timedelta(seconds=catch_up),
        )
        schedules.append(validate(schedule))
    names = [s.name for s in schedules]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{source}: schedule names must be unique")
    return schedules


def load_schedules(settings: Settings) -> list[Schedule]:
    """The schedules to run: the file named by OUTREACH_SCHEDULES, or the default set."""
    if settings.schedules_file:
        path = Path(settings.schedules_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"OUTREACH_SCHEDULES: cannot read {path}: {exc.strerror}"
            ) from None
        return schedules_from_json(text, f"OUTREACH_SCHEDULES ({path})")
    return [validate(s) for s in default_schedules(settings)]


def resolve(path: str) -> Callable[..., Any]:
    """The function a dotted path names; JobUnavailable (one line) when it does not exist."""
    module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the named module (or a parent) missing means "not available"; a missing
        # dependency inside it is a real error and surfaces as such.
        missing = exc.name or ""
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise
        raise JobUnavailable(f"{path} is not available ({module_name} is not installed)") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise JobUnavailable(f"{path} is not available ({module_name} has no {attribute})")
    return function
