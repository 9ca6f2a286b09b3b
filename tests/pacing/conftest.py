"""Pacing's own defaults in every pacing test (the other suites run with pacing off)."""

from __future__ import annotations

import pytest

from storage.settings import DEFAULT_EMAIL_SPACING, DEFAULT_SENDING_HOURS, DEFAULT_WHATSAPP_SPACING
from tests.pacing.helpers import TimedChannel
from worker import delivery, senders


@pytest.fixture(autouse=True)
def pacing_defaults(env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    env.setenv("OUTREACH_WHATSAPP_MIN_SPACING", str(DEFAULT_WHATSAPP_SPACING[0]))
    env.setenv("OUTREACH_WHATSAPP_MAX_SPACING", str(DEFAULT_WHATSAPP_SPACING[1]))
    env.setenv("OUTREACH_EMAIL_MIN_SPACING", str(DEFAULT_EMAIL_SPACING[0]))
    env.setenv("OUTREACH_EMAIL_MAX_SPACING", str(DEFAULT_EMAIL_SPACING[1]))
    env.setenv("OUTREACH_SENDING_HOURS", DEFAULT_SENDING_HOURS)
    return env


@pytest.fixture
def whatsapp(monkeypatch: pytest.MonkeyPatch) -> TimedChannel:
    """The channel every send goes to, recording when (on the fake clock) each went."""
    channel = TimedChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: channel)
    return channel


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement run from now on, as its text."""
    from storage.db import database

    seen: list[str] = []
    real = database.execute_sql

    def counted(sql, params=None, *args, **kwargs):
        seen.append(sql)
        return real(sql, params, *args, **kwargs)

    monkeypatch.setattr(database.obj, "execute_sql", counted)
    return seen


@pytest.fixture
def no_slot_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slots exactly a spacing and the guard apart, for the tests of turns whose arithmetic is
    simpler without the slack (tests/pacing/test_spacing.py tests the slack itself)."""
    monkeypatch.setattr(senders, "SLOT_SLACK_SHARE", 0.0)
