"""Engagement fixtures: users in a given engagement state, a daily run worked to the end, logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from producers.embedded import drain
from producers.engagement import run_daily
from storage import clock as clock_module
from storage.models import Account, EngagementState, User, UserProfile
from storage.models.engagement import ACTIVE
from worker.engagement.runs import job_result
from worker.logging import configure_logging

JID = "33612345678@c.us"


@pytest.fixture(autouse=True)
def quick_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's watch looks again every few milliseconds, so tests wait for nothing."""
    monkeypatch.setattr("worker.actors.engagement.WATCH_INTERVAL_MS", 5)


@pytest.fixture
def log_channel(env: pytest.MonkeyPatch) -> None:
    """Goodbyes go to the `log` channel, so deliveries succeed without a WhatsApp server."""
    env.setenv("OUTREACH_ENGAGEMENT_CHANNEL", "log")


@pytest.fixture
def account(db: str, clock: Any) -> Account:
    return Account.create(name="Acme", created_at=clock.now())


MakeUser = Callable[..., int]


def create_user(
    account: Account,
    now: datetime,
    *,
    name: str = "Ana",
    state: str = ACTIVE,
    inactive_for: timedelta = timedelta(0),
    goodbye_expires_at: datetime | None = None,
    remind_at: datetime | None = None,
    locale: str = "en",
    opted_out: bool = False,
    destination: str = "individual",
    whatsapp_jid: str | None = JID,
    group_jid: str | None = None,
    phone: str | None = "+33612345678",
    profile: bool = True,
) -> int:
    user = User.create(account=account, name=name, phone=phone, created_at=now)
    if profile:
        UserProfile.create(
            user=user,
            locale=locale,
            reengagement_opt_out=opted_out,
            preferred_destination=destination,
            whatsapp_jid=whatsapp_jid,
            group_jid=group_jid,
            created_at=now,
        )
    EngagementState.create(
        user=user,
        state=state,
        last_activity_at=now - inactive_for,
        goodbye_expires_at=goodbye_expires_at,
        remind_at=remind_at,
        updated_at=now,
    )
    return int(user.id)


@pytest.fixture
def make_user(account: Account, clock: Any, log_channel: None) -> MakeUser:
    """A user with a profile and an engagement state; keyword arguments describe them."""

    def make(**kwargs: Any) -> int:
        return create_user(account, clock.now(), **kwargs)

    return make


@pytest.fixture
def daily_run() -> Callable[[], dict[str, Any]]:
    """Run the daily job at the clock's time and work every message it caused; its JobResult."""

    def run() -> dict[str, Any]:
        started = run_daily(clock_module.now())
        drain()
        return job_result(started["run_id"])

    return run


def state_of(user_id: int) -> EngagementState:
    return EngagementState.get(EngagementState.user == user_id)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", stream)
    yield stream
    root.handlers, level = saved
    root.setLevel(level)


def log_lines(stream: io.StringIO, event: str | None = None) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if event is None or line.get("event") == event]
