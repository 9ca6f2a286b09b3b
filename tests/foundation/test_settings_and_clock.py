"""Settings come from the environment; time comes from one injected clock (invariant 5)."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage import clock as clock_module
from storage.clock import FileClock, FrozenClock
from storage.db import open_database
from storage.errors import ConfigurationError
from storage.settings import DEFAULT_DATABASE_URL, Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.redis_url is None  # in-process broker
    assert settings.force_log_channel is False
    assert settings.log_format == "json"


def test_values_are_read_and_typed_from_the_environment():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@h:5432/d",
            "REDIS_URL": "redis://h:6379/1",
            "OUTREACH_FORCE_LOG_CHANNEL": "yes",
            "OUTREACH_CHANNEL_TIMEOUT": "2.5",
            "OUTREACH_RELAY_AFTER": "60",
        }
    )
    assert settings.redis_url == "redis://h:6379/1"
    assert settings.force_log_channel is True
    assert settings.channel_timeout == 2.5
    assert settings.relay_after_seconds == 60


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OUTREACH_RELAY_AFTER", "soon"),
        ("OUTREACH_RELAY_AFTER", "-5"),
        ("OUTREACH_CHANNEL_TIMEOUT", "nan"),
        ("OUTREACH_CHANNEL_TIMEOUT", "-1.5"),
        ("OUTREACH_FORCE_LOG_CHANNEL", "maybe"),
        ("OUTREACH_LOG_LEVEL", "LOUD"),
        ("OUTREACH_LOG_FORMAT", "xml"),
    ],
)
def test_a_malformed_setting_is_a_clear_error_naming_the_variable(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_a_malformed_setting_is_one_line_from_the_cli(monkeypatch):
    # Given an operator's typo in the environment
    monkeypatch.setenv("OUTREACH_LOG_LEVEL", "LOUD")
    get_settings.cache_clear()
    # When any command runs
    result = subprocess.run(
        [sys.executable, "-m", "producers.cli", "settings"], capture_output=True, text=True
    )
    get_settings.cache_clear()
    # Then it is refused in one line naming the variable, without a traceback
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "OUTREACH_LOG_LEVEL" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [("mysql://x/y", "unsupported scheme"), ("sqlite:///:memory:", "not :memory:")],
)
def test_unsupported_database_urls_are_refused(url, message):
    with pytest.raises(ConfigurationError, match=message):
        open_database(url)


def test_the_configuration_page_documents_every_setting():
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name, _ in Settings.documented() if f"`{name}`" not in page]
    assert missing == []


def test_frozen_clock_moves_only_when_told():
    frozen = FrozenClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    clock_module.set_clock(frozen)
    try:
        assert clock_module.now() == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        frozen.advance(timedelta(hours=47))
        assert clock_module.now() == datetime(2026, 1, 3, 11, 0, tzinfo=UTC)
    finally:
        clock_module.set_clock(None)


def test_file_clock_is_shared_through_a_file(tmp_path):
    writer, reader = FileClock(tmp_path / "now"), FileClock(tmp_path / "now")
    writer.set(datetime(2026, 5, 1, 8, 30, tzinfo=UTC))
    assert reader.now() == datetime(2026, 5, 1, 8, 30, tzinfo=UTC)


_FORBIDDEN = re.compile(r"datetime\.(now|utcnow|today)\(|\bdate\.today\(|time\.time\(")


def test_domain_code_never_reads_the_system_time_itself():
    # Only the clock module may; everything else asks it (monotonic timers are allowed).
    offenders = []
    for package in ("storage", "worker", "producers"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "storage" / "clock.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _FORBIDDEN.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
