"""Real local servers standing in for the channels' far ends.

- an SMTP server (aiosmtpd) that records what it receives, refuses chosen recipients with 550
  and defers others with 451;
- HTTP servers (pytest-httpserver) for WAHA and for a webhook receiver, threaded so that a slow
  answer does not hold up the next request.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from worker.actors.delivery import deliver_outbox_message, deliver_outbox_messages
from worker.logging import configure_logging

# Channel timeout for most tests: generous, so a busy machine never turns a send into a timeout.
TEST_CHANNEL_TIMEOUT = "5"
# Channel timeout for the tests of slow answers (`short_timeout`): a slow answer times out fast.
SHORT_CHANNEL_TIMEOUT = "0.5"
# Longest a slow handler holds a request; the fixture releases it earlier at teardown.
SLOW_ANSWER_SECONDS = 10


def free_port() -> int:
    """A port nothing listens on (aiosmtpd's Controller cannot take port 0 itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- SMTP --------------------------------------------------------------------------------------


@dataclass
class SmtpRecorder:
    """The aiosmtpd handler: records greetings and accepted messages."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    greetings: int = 0
    # Recipients answered "550 no such user" (permanent) or "451 try later" (greylisting).
    refused: set[str] = field(default_factory=set)
    deferred: set[str] = field(default_factory=set)
    # Answer 451 to the message data itself (a full mailbox, a busy server).
    defer_data: bool = False
    # Keep the message, then hold the answer this many seconds (past the channel's timeout).
    answer_late_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def handle_EHLO(self, server, conversation, envelope, hostname, responses):
        self.greetings += 1
        conversation.host_name = hostname
        return responses

    async def handle_RCPT(self, server, conversation, envelope, address, rcpt_options):
        if address in self.refused:
            return "550 5.1.1 no such user here"
        if address in self.deferred:
            return "451 4.7.1 greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, conversation, envelope):
        if self.defer_data:
            return "451 4.3.0 temporary failure, try again later"
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.original_content))
        if self.answer_late_seconds:
            await asyncio.sleep(self.answer_late_seconds)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[SmtpRecorder]:
    recorder = SmtpRecorder(port=free_port())
    controller = Controller(recorder, hostname=recorder.host, port=recorder.port)
    controller.start()
    yield recorder
    controller.stop()


# --- HTTP (WAHA, webhook receiver) -----------------------------------------------------------


class Server(HTTPServer):
    """A pytest-httpserver whose slow handlers are released when the test ends."""

    def __init__(self) -> None:
        super().__init__(host="127.0.0.1", port=0, threaded=True)
        self.released = threading.Event()

    def thread_target(self) -> None:
        # Poll for shutdown often, so stopping the server at teardown is quick.
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.02)

    def slow(self, status: int = 200, body: dict[str, Any] | None = None) -> Callable:
        """A handler that answers long after any channel timeout."""

        def handler(request: Request) -> Response:
            self.released.wait(SLOW_ANSWER_SECONDS)
            return Response(json.dumps(body or {}), status=status, mimetype="application/json")

        return handler

    def requests(self) -> list[Request]:
        return [request for request, _response in self.log]


def _server() -> Iterator[Server]:
    server = Server()
    server.start()
    yield server
    server.released.set()
    server.clear()
    server.stop()


@pytest.fixture
def waha() -> Iterator[Server]:
    """Stands in for a WAHA server."""
    yield from _server()


@pytest.fixture
def webhook_receiver() -> Iterator[Server]:
    """Stands in for the system that receives webhook sends."""
    yield from _server()


# --- settings, retries, logs -----------------------------------------------------------------


@pytest.fixture
def channel_env(env, smtp_server, waha, webhook_receiver) -> pytest.MonkeyPatch:
    """Every channel pointed at its test server, with a short network timeout."""
    env.setenv("SMTP_URL", smtp_server.url)
    env.setenv("SMTP_FROM", "outreach@example.org")
    env.setenv("WAHA_URL", waha.url_for("/"))
    env.setenv("WAHA_API_KEY", "waha-secret")
    env.setenv("WEBHOOK_URL", webhook_receiver.url_for("/hook"))
    env.setenv("OUTREACH_CHANNEL_TIMEOUT", TEST_CHANNEL_TIMEOUT)
    return env


@pytest.fixture
def short_timeout(channel_env: pytest.MonkeyPatch) -> None:
    """Channels give up after half a second (the settings are read again by each test)."""
    channel_env.setenv("OUTREACH_CHANNEL_TIMEOUT", SHORT_CHANNEL_TIMEOUT)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The delivery actors retry within milliseconds (their real backoff starts at 5 s)."""
    for actor in (deliver_outbox_message, deliver_outbox_messages):
        monkeypatch.setitem(actor.options, "min_backoff", 10)
        monkeypatch.setitem(actor.options, "max_backoff", 20)
        monkeypatch.setitem(actor.options, "max_retries", 3)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Every JSON log line written during the test (INFO and up)."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO", stream)
    yield stream
    root.handlers = saved_handlers
    root.setLevel(saved_level)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
