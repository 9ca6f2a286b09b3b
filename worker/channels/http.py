"""JSON POSTs of the HTTP channels (WAHA, webhooks), on httpcore's connection pool.

httpx's Client is a layer over this same pool (cookies, auth, redirects, request and response
models) that a channel does not use, and it cost a paced send more worker CPU than its database
statements. The pool keeps connections open between sends all the same.
"""

from __future__ import annotations

import json
from typing import Any

import httpcore

# Sent with every request: who is calling, in the far end's logs.
USER_AGENT = b"outreach-worker"
# Connections a process keeps to one far end at most (httpx's default): more than its threads.
MAX_CONNECTIONS = 100


class Answer:
    """What the far end answered (header names in lower case)."""

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], content: bytes):
        self.status_code = status_code
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.content)


class JsonPoster:
    """POSTs JSON over kept-alive connections, each step (connect, write, read, wait for a
    free connection) within `timeout` seconds. Safe to share between threads."""

    def __init__(self, timeout: float) -> None:
        self.pool = httpcore.ConnectionPool(max_connections=MAX_CONNECTIONS)
        phases = ("connect", "read", "write", "pool")
        self.extensions = {"timeout": dict.fromkeys(phases, timeout)}

    def post(self, url: str, payload: dict[str, object], headers: dict[str, str]) -> Answer:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        sent = [(b"Content-Type", b"application/json"), (b"User-Agent", USER_AGENT)]
        sent += [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]
        response = self.pool.request(
            "POST", url, headers=sent, content=body, extensions=self.extensions
        )
        return Answer(response.status, response.headers, response.content)
