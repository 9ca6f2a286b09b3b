"""JSON POSTs of the HTTP channels (WAHA, webhooks), over kept-alive connections of the
standard library's `http.client`.

A paced send is one POST, and the request's own CPU counts: measured alone against a local
server, httpcore's pool took 0.34 to 0.46 ms of CPU a request, `http.client` 0.16 to 0.19 ms
(httpx's Client, a layer over httpcore, more still). A channel needs none of what they add
(HTTP/2, proxies, async, a pool's limits): one connection per thread at most, kept open between
sends, and every failure sorted by whether the request may have gone out.
"""

from __future__ import annotations

import http.client
import json
import select
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

# Sent with every request: who is calling, in the far end's logs.
USER_AGENT = "outreach-worker"


class PostFailed(Exception):
    """A POST that got no answer; `timed_out` when a step ran out of time."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class NotSent(PostFailed):
    """The request never went out: the far end could not be reached (or not in time)."""


class MaybeSent(PostFailed):
    """The request went out, or may have, and no whole answer came back."""


class Answer:
    """What the far end answered (header names in lower case)."""

    def __init__(self, status_code: int, headers: list[tuple[str, str]], content: bytes):
        self.status_code = status_code
        self.headers = {k.lower(): v for k, v in headers}
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


# Where a connection goes: scheme, host, port.
_Origin = tuple[str, str, int]


class JsonPoster:
    """POSTs JSON over kept-alive connections, each step (connect, write, read) within `timeout`
    seconds. Safe to share between threads: a connection serves one request at a time, and
    waits between them among the idle ones."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def post(self, url: str, payload: dict[str, object], headers: dict[str, str]) -> Answer:
        target = urlsplit(url)
        scheme = target.scheme.lower()
        if scheme not in ("http", "https") or not target.hostname:
            raise NotSent(f"not an http(s) URL: {url}")
        origin = (scheme, target.hostname, target.port or (443 if scheme == "https" else 80))
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        connection = self._connection(origin)
        try:
            connection.request("POST", path, body=body, headers=sent)
            response = connection.getresponse()
            content = response.read()
        except TimeoutError as exc:
            connection.close()
            raise MaybeSent(str(exc) or "timed out", timed_out=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise MaybeSent(f"{type(exc).__name__}: {exc}", timed_out=False) from exc
        if response.will_close:
            connection.close()
        else:
            with self._lock:
                self._idle.setdefault(origin, []).append(connection)
        return Answer(response.status, response.getheaders(), content)

    def _connection(self, origin: _Origin) -> http.client.HTTPConnection:
        """An idle connection to `origin` that the far end has not closed, else a new one,
        connected (NotSent when it cannot be)."""
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                connection = idle.pop() if idle else None
            if connection is None:
                break
            if _still_open(connection):
                return connection
            connection.close()
        scheme, host, port = origin
        if scheme == "https":
            context = ssl.create_default_context()
            connection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=context
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            connection.connect()
        except TimeoutError as exc:
            raise NotSent(f"connecting: {exc}", timed_out=True) from exc
        except OSError as exc:
            raise NotSent(f"{type(exc).__name__}: {exc}") from exc
        return connection


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle connection has nothing to read: if its socket is readable, the far end closed it
    (or sent what no request asked for), and a request on it could be lost mid-way."""
    sock = connection.sock
    if sock is None:
        return False
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable
