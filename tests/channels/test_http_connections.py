"""The HTTP channels' connections (worker.channels.http), against a real local server whose
connections the test controls: sends share a kept-alive connection; one the far end closed while
idle is never used for a request (which could be lost mid-way), so the send goes on a new one
and is not uncertain; a far end that drops the connection after reading the request makes an
uncertain send, one that cannot be reached a transient one.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from worker.channels import TransientSendError, UncertainSendError
from worker.channels.base import post_json
from worker.channels.http import JsonPoster

ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"id":"ok"}'
)


class FarEnd:
    """A server on a port of its own: it records each request's body and the connection it
    came on, and answers it, keeping the connection open unless `drop_before_answer`."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[tuple[int, dict[str, object]]] = []
        self.connections: list[socket.socket] = []
        self.drop_before_answer = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections.append(connection)
                number = len(self.connections)
            threading.Thread(target=self._serve, args=(connection, number), daemon=True).start()

    def _serve(self, connection: socket.socket, number: int) -> None:
        buffer = b""
        while True:
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while (end := buffer.find(b"\r\n\r\n")) >= 0:
                head = buffer[:end].decode("latin-1").lower()
                length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
                if len(buffer) < end + 4 + length:
                    break
                body, buffer = buffer[end + 4 : end + 4 + length], buffer[end + 4 + length :]
                with self.lock:
                    self.requests.append((number, json.loads(body)))
                if self.drop_before_answer:
                    connection.close()
                    return
                connection.sendall(ANSWER)

    def close_idle_connections(self) -> None:
        """The far end closes every connection it holds, as a server does with idle ones."""
        with self.lock:
            for connection in self.connections:
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()

    def stop(self) -> None:
        self.listener.close()


@pytest.fixture
def far_end() -> Iterator[FarEnd]:
    server = FarEnd()
    yield server
    server.stop()


def send(poster: JsonPoster, url: str, n: int) -> str:
    answer = post_json(poster, url, {"n": n}, {"Idempotency-Key": f"k{n}"}, "the receiver")
    return str(answer.json()["id"])


def test_sends_share_one_kept_alive_connection(far_end):
    # Given a poster
    poster = JsonPoster(timeout=5)
    # When it sends five requests one after another
    answers = [send(poster, far_end.url, n) for n in range(5)]
    # Then each is answered, and all came on one connection
    assert answers == ["ok"] * 5
    assert far_end.requests == [(1, {"n": n}) for n in range(5)]


def test_a_connection_the_far_end_closed_while_idle_is_not_used(far_end):
    # Given a poster whose kept-alive connection the far end closed since its last send
    poster = JsonPoster(timeout=5)
    send(poster, far_end.url, 0)
    far_end.close_idle_connections()
    time.sleep(0.05)  # the close reaches this end
    # When it sends again
    answer = send(poster, far_end.url, 1)
    # Then the send goes on a new connection and is answered: neither lost nor uncertain
    assert answer == "ok"
    assert far_end.requests == [(1, {"n": 0}), (2, {"n": 1})]


def test_a_far_end_that_drops_the_connection_after_the_request_is_an_uncertain_send(far_end):
    # Given a far end that reads a request, then closes the connection without answering
    far_end.drop_before_answer = True
    poster = JsonPoster(timeout=5)
    # When a request is sent
    with pytest.raises(UncertainSendError, match="lost the connection"):
        send(poster, far_end.url, 0)
    # Then it did arrive: uncertain is the truth (a retry could be a second message)
    assert far_end.requests == [(1, {"n": 0})]


def test_a_far_end_that_is_not_listening_is_a_transient_send():
    # Given a port nobody listens on
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    # When a request is sent there, then it never went out: transient, safe to retry
    with pytest.raises(TransientSendError, match="unreachable"):
        send(JsonPoster(timeout=5), f"http://127.0.0.1:{port}/hook", 0)
