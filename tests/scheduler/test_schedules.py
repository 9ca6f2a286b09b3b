"""The schedule set: defaults from settings, a JSON file that replaces them, clear errors."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from producers.scheduler.schedules import (
    JobUnavailable,
    Schedule,
    load_schedules,
    resolve,
    schedules_from_json,
    validate,
)
from storage.errors import ConfigurationError
from storage.settings import Settings


def test_the_default_schedules():
    schedules = {s.name: s for s in load_schedules(Settings())}
    assert {n: (s.cron, s.timezone) for n, s in schedules.items()} == {
        "engagement": ("0 6 * * *", "UTC"),
        "hunts": ("0 8 * * *", "Europe/Paris"),
        "campaigns": ("*/5 * * * *", "UTC"),
        "outbox-relay": ("* * * * *", "UTC"),
    }
    assert schedules["engagement"].catch_up == timedelta(hours=6)
    assert schedules["hunts"].catch_up == timedelta(hours=6)
    assert schedules["engagement"].job == "producers.engagement.run_daily"
    assert schedules["hunts"].job == "producers.hunts.sweep"
    assert schedules["campaigns"].job == "producers.campaigns.tick"


def test_hunts_time_and_zone_come_from_settings():
    settings = Settings.from_env(
        {"OUTREACH_HUNTS_CRON": "30 7 * * 1-5", "OUTREACH_HUNTS_TIMEZONE": "America/Sao_Paulo"}
    )
    hunts = next(s for s in load_schedules(settings) if s.name == "hunts")
    assert (hunts.cron, hunts.timezone) == ("30 7 * * 1-5", "America/Sao_Paulo")


def test_a_schedules_file_replaces_the_default_set(tmp_path):
    path = tmp_path / "schedules.json"
    path.write_text(
        json.dumps(
            [
                {
                    "name": "fast",
                    "cron": "* * * * * *",
                    "job": "tests.scheduler.jobs.count_fire",
                    "catch_up_seconds": 5,
                }
            ]
        )
    )
    (only,) = load_schedules(Settings.from_env({"OUTREACH_SCHEDULES": str(path)}))
    assert only == Schedule(
        "fast", "* * * * * *", "tests.scheduler.jobs.count_fire", "UTC", timedelta(seconds=5)
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ("[]", "non-empty JSON list"),
        ('[{"name": "x", "cron": "* * * * *"}]', "needs name, cron and job"),
        ('[{"name": "x", "cron": "61 * * * *", "job": "a.b"}]', "not a cron expression"),
        ('[{"name": "x", "cron": "0 0 30 2 *", "job": "a.b"}]', "never fires"),
        ('[{"name": "x", "cron": "* * * * *", "job": "a.b", "timezone": "Mars/Base"}]', "Mars"),
        ('[{"name": "x", "cron": "* * * * *", "job": "nodots"}]', "not a dotted path"),
        ('[{"name": "x", "cron": "* * * * *", "job": "a.b", "catch_up_seconds": -1}]', "negative"),
        ('[{"name": "x", "cron": "* * * * *", "job": "a.b", "colour": 1}]', "unknown keys"),
        (
            '[{"name": "x", "cron": "* * * * *", "job": "a.b"},'
            ' {"name": "x", "cron": "0 * * * *", "job": "a.b"}]',
            "unique",
        ),
    ],
)
def test_a_malformed_schedules_file_is_one_clear_error(text, message):
    with pytest.raises(ConfigurationError) as error:
        schedules_from_json(text, "OUTREACH_SCHEDULES")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_schedules_file_is_one_clear_error(tmp_path):
    settings = Settings.from_env({"OUTREACH_SCHEDULES": str(tmp_path / "missing.json")})
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_schedules(settings)


def test_a_bad_time_zone_in_settings_is_refused():
    with pytest.raises(ConfigurationError, match="unknown time zone"):
        load_schedules(Settings.from_env({"OUTREACH_HUNTS_TIMEZONE": "Europe/Atlantis"}))


def test_a_name_with_a_colon_would_break_lock_keys():
    with pytest.raises(ConfigurationError, match="without ':'"):
        validate(Schedule("a:b", "* * * * *", "a.b"))


def test_resolving_a_job_that_is_not_installed_is_one_clear_error():
    with pytest.raises(JobUnavailable, match=r"producers\.nothing is not installed"):
        resolve("producers.nothing.run")
    with pytest.raises(JobUnavailable, match="has no missing_function"):
        resolve("producers.scheduler.jobs.missing_function")
    assert resolve("producers.scheduler.jobs.outbox_relay").__name__ == "outbox_relay"
