"""The web process warns at start when no secret key is set (the links are then forgeable)."""

from __future__ import annotations

import json

from producers.web.app import create_app
from storage.settings import Settings
from tests.channels.conftest import log_stream  # noqa: F401
from worker import secret


def test_a_web_process_without_a_secret_key_says_so_when_it_starts(monkeypatch, log_stream):  # noqa: F811
    monkeypatch.setattr(secret, "_warned", False)
    create_app(Settings())
    events = [json.loads(line)["event"] for line in log_stream.getvalue().splitlines()]
    assert "secret_key.development" in events


def test_a_web_process_with_a_secret_key_does_not_warn(monkeypatch, log_stream):  # noqa: F811
    monkeypatch.setattr(secret, "_warned", False)
    create_app(Settings(secret_key="configured"))
    events = [json.loads(line)["event"] for line in log_stream.getvalue().splitlines()]
    assert "secret_key.development" not in events
