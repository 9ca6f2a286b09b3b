"""Unsubscribe fixtures: an account's email campaign, a real SMTP receiver, a real web process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from storage.models import Campaign, ContactList
from storage.settings import get_settings
from tests.campaigns.conftest import account, make_campaign, make_list, owner  # noqa: F401
from tests.campaigns.helpers import deliver_queued
from tests.channels.conftest import SmtpRecorder, free_port, smtp_server  # noqa: F401
from tests.processes import BIN
from tests.processes import web_process as running_web
from worker.campaigns.batches import claim_batch, run_batch
from worker.campaigns.control import run_manually

SECRET_KEY = "test-secret-key-for-unsubscribe-links"


@pytest.fixture
def email_env(env: pytest.MonkeyPatch, smtp_server: SmtpRecorder):  # noqa: F811
    """Emails go to the test's SMTP server, signed with the test's key; the links point at a
    port nothing listens on, unless the test starts the web process (`web_process`)."""
    env.setenv("SMTP_URL", smtp_server.url)
    env.setenv("SMTP_FROM", "offers@bakery.example.org")
    env.setenv("OUTREACH_CHANNEL_TIMEOUT", "5")
    env.setenv("OUTREACH_PUBLIC_URL", f"http://127.0.0.1:{free_port()}")
    env.setenv("OUTREACH_SECRET_KEY", SECRET_KEY)
    return env


@pytest.fixture
def send_campaign(clock, owner, make_campaign) -> Callable[..., Campaign]:  # noqa: F811
    """Run an email campaign's first batch by hand and deliver it (as a worker would)."""

    def send(contact_list: ContactList, name: str) -> Campaign:
        campaign = make_campaign(contact_list, name=name, channel="email", daily_send_limit=50)
        run_manually(campaign.id, owner.id)
        claim_batch(campaign.id, 1, clock.now())
        run_batch(campaign.id, 1)
        deliver_queued()
        return campaign

    return send


@dataclass
class WebProcess:
    url: str
    client: httpx.Client


@pytest.fixture
def web_process(db: str, email_env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[WebProcess]:
    """The Procfile's `web` line on the test's database (embedded broker), with the test's key;
    the emails sent from then on link to it."""
    env = {**os.environ, "DATABASE_URL": db, "OUTREACH_LOG_LEVEL": "INFO"}
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env.pop("REDIS_URL", None)
    with running_web(env, tmp_path / "web.log") as base, httpx.Client(timeout=10) as client:
        email_env.setenv("OUTREACH_PUBLIC_URL", base)
        get_settings.cache_clear()
        yield WebProcess(base, client)
