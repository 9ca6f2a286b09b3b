"""The far ends of the ``webhook`` and ``email`` channels: an HTTP server and an SMTP server
that count what arrives per idempotency key and per recipient, with switchable misbehaviour
(error answers, slow answers, dropped connections, refused connections, recipients refused for
good).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.processes import free_port


@dataclass
class Misbehaviour:
    """How the receiver answers the next `times` requests (None: until :meth:`behave`).

    `recipients` limits it to those recipients; `status` answers that HTTP status (or SMTP code)
    instead of accepting; `delay` holds the answer that many seconds first; `drop` closes the
    connection without any answer.
    """

    status: int | None = None
    delay: float = 0.0
    drop: bool = False
    times: int | None = None
    recipients: frozenset[str] | None = None
    applied: int = 0

    def applies_to(self, recipient: str) -> bool:
        if self.times is not None and self.applied >= self.times:
            return False
        return self.recipients is None or recipient in self.recipients


@dataclass
class Tally:
    """What reached a receiver. A "delivery" is the first accepted request of a key; an accepted
    request with a key already delivered is a "repeat" (dropped by a receiver that deduplicates,
    a second message in the recipient's hands for one that does not)."""

    requests: Counter[str] = field(default_factory=Counter)  # every request, per key
    delivered: dict[str, str] = field(default_factory=dict)  # key -> recipient
    repeats: Counter[str] = field(default_factory=Counter)  # accepted again, per key
    per_recipient: Counter[str] = field(default_factory=Counter)  # deliveries per recipient
    refused: Counter[str] = field(default_factory=Counter)  # answered with an error, per key
    dropped: int = 0


class _Receiver:
    """What both receivers share: the tally, the misbehaviour rules, permanent refusals."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tally = Tally()
        self.rules: list[Misbehaviour] = []
        # Recipients refused for good, with the status (HTTP 4xx, SMTP 5xx) to answer.
        self.refused_recipients: dict[str, int] = {}

    def misbehave(
        self,
        *,
        status: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
        times: int | None = None,
        recipients: set[str] | None = None,
    ) -> Misbehaviour:
        rule = Misbehaviour(
            status, delay, drop, times, frozenset(recipients) if recipients else None
        )
        with self.lock:
            self.rules.append(rule)
        return rule

    def behave(self) -> None:
        """Back to accepting everything (permanent refusals stay)."""
        with self.lock:
            self.rules.clear()

    def refuse_for_good(self, recipient: str, status: int) -> None:
        with self.lock:
            self.refused_recipients[recipient] = status

    def _rule_for(self, recipient: str) -> Misbehaviour | None:
        with self.lock:
            for rule in self.rules:
                if rule.applies_to(recipient):
                    rule.applied += 1
                    return rule
        return None

    def _accept(self, key: str, recipient: str) -> bool:
        """Count an accepted request; False when the key was delivered before (a repeat)."""
        with self.lock:
            if key in self.tally.delivered:
                self.tally.repeats[key] += 1
                return False
            self.tally.delivered[key] = recipient
            self.tally.per_recipient[recipient] += 1
            return True

    # The views the scenarios check.
    def delivered_keys(self) -> set[str]:
        with self.lock:
            return set(self.tally.delivered)

    def repeated_keys(self) -> dict[str, int]:
        with self.lock:
            return dict(self.tally.repeats)

    def recipients_reached_twice(self) -> dict[str, int]:
        with self.lock:
            return {r: n for r, n in self.tally.per_recipient.items() if n > 1}

    def request_count(self) -> int:
        with self.lock:
            return sum(self.tally.requests.values())


class WebhookReceiver(_Receiver):
    """The system behind the ``webhook`` channel: keeps the ``Idempotency-Key`` (as the channel's
    contract says), so a key sent again is answered like the first time and not delivered again."""

    deduplicates = True

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:
                    # The sender died mid-request (a killed worker): nothing was delivered.
                    self.close_connection = True
                    return
                key = str(
                    self.headers.get("Idempotency-Key") or self.headers.get("X-Idempotency-Key")
                )
                try:
                    recipient = str(json.loads(raw)["recipient"])
                except (ValueError, KeyError, TypeError):
                    receiver._answer(self, 400, {"error": "not a message"}, key)
                    return
                receiver.handle(self, key, recipient)

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self.server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def handle(self, request: BaseHTTPRequestHandler, key: str, recipient: str) -> None:
        with self.lock:
            self.tally.requests[key] += 1
            permanent = self.refused_recipients.get(recipient)
        rule = self._rule_for(recipient)
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        if rule is not None and rule.drop:
            with self.lock:
                self.tally.dropped += 1
            request.close_connection = True
            with contextlib.suppress(OSError):
                request.connection.shutdown(socket.SHUT_RDWR)
            return
        if rule is not None and rule.status is not None:
            self._answer(request, rule.status, {"error": "misbehaving on purpose"}, key)
            return
        if permanent is not None:
            self._answer(request, permanent, {"error": f"recipient {recipient} refused"}, key)
            return
        self._accept(key, recipient)
        self._answer(request, 200, {"id": f"wh-{key}"}, None)

    def _answer(
        self,
        request: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        refused: str | None,
    ) -> None:
        if refused is not None:
            with self.lock:
                self.tally.refused[refused] += 1
        data = json.dumps(body).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except OSError:
            pass  # the client gave up (its timeout) before the answer

    def refuse_connections(self) -> None:
        """Nothing listens on the port any more: connections are refused."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accept_connections(self) -> None:
        if self.server is None:
            self.start()

    def stop(self) -> None:
        self.refuse_connections()


class _SmtpHandler:
    def __init__(self, receiver: MailReceiver) -> None:
        self.receiver = receiver

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        receiver = self.receiver
        permanent = receiver.refused_recipients.get(address)
        if permanent is not None:
            return f"{permanent} 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        receiver = self.receiver
        message = message_from_bytes(envelope.original_content)
        key = str(message.get("X-Idempotency-Key", ""))
        recipient = ",".join(envelope.rcpt_tos)
        with receiver.lock:
            receiver.tally.requests[key] += 1
        rule = receiver._rule_for(recipient)
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None and (rule.drop or rule.status is not None):
            with receiver.lock:
                receiver.tally.refused[key] += 1
            if rule.drop:
                return "421 4.3.2 closing the connection on purpose"
            return f"{rule.status} misbehaving on purpose"
        # A mailbox does not deduplicate: the same Message-ID twice is two messages in hand.
        if receiver._accept(key, recipient):
            with receiver.lock:
                receiver.message_ids[key] = str(message.get("Message-ID", ""))
        return "250 Message accepted for delivery"


class MailReceiver(_Receiver):
    """An SMTP server (aiosmtpd) standing in for the recipients' mailboxes.

    The channel does not deduplicate, so a repeat here is a person holding two copies.
    """

    deduplicates = False
    sender = "outreach@example.org"

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.message_ids: dict[str, str] = {}
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> MailReceiver:
        self.controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
