"""Unsubscribe fixtures: an account's email campaign, a real SMTP receiver, a real web process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from storage.models import Campaign, ContactList, OutboxMessage
from tests.campaigns.conftest import account, make_campaign, make_list, owner  # noqa: F401
from tests.campaigns.helpers import deliver_queued
from tests.channels.conftest import SmtpRecorder, free_port, smtp_server  # noqa: F401
from tests.processes import BIN, procfile_command, running, wait_until
from worker.campaigns.batches import claim_batch, run_batch
from worker.campaigns.control import run_manually

SECRET_KEY = "test-secret-key-for-unsubscribe-links"


@pytest.fixture
def public_port() -> int:
    """The port the web process listens on, known before the emails that point at it go out."""
    return free_port()


@pytest.fixture
def email_env(env: pytest.MonkeyPatch, smtp_server: SmtpRecorder, public_port: int):  # noqa: F811
    """Emails go to the test's SMTP server; their links point at the web process's port."""
    env.setenv("SMTP_URL", smtp_server.url)
    env.setenv("SMTP_FROM", "offers@bakery.example.org")
    env.setenv("OUTREACH_CHANNEL_TIMEOUT", "5")
    env.setenv("OUTREACH_PUBLIC_URL", f"http://127.0.0.1:{public_port}")
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
def web_process(
    db: str, email_env: pytest.MonkeyPatch, public_port: int, tmp_path: Path
) -> Iterator[WebProcess]:
    """The Procfile's `web` line on its own port, on the test's database (embedded broker)."""
    email_env.setenv("PORT", str(public_port))
    command = procfile_command("web")
    env = {
        **os.environ,
        "DATABASE_URL": db,
        "OUTREACH_LOG_LEVEL": "INFO",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("REDIS_URL", None)
    base = f"http://127.0.0.1:{public_port}"
    with running(command, env, tmp_path / "web.log"), httpx.Client(timeout=10) as client:

        def up() -> bool:
            try:
                return client.get(f"{base}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, timeout=60, what=f"the web process on {base}")
        yield WebProcess(base, client)


def outbox_row_to(address: str) -> OutboxMessage:
    return OutboxMessage.get(OutboxMessage.address == address)
