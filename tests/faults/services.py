"""The services a fault test may break, of its own: a PostgreSQL database migrated for it, a TCP
proxy in front of PostgreSQL that can be cut and restored, and a ``redis-server`` it may shut down
(the shared servers never are).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.processes import free_port, wait_until


@dataclass
class FaultDatabase:
    """A database of this test's own on the shared PostgreSQL server."""

    name: str
    url: str  # straight to the server (the test process's own connection)

    def url_via(self, port: int, host: str = "127.0.0.1") -> str:
        """The same database reached through another port (a proxy)."""
        from playhouse.db_url import parse

        params = parse(self.url)
        user = params.get("user") or "postgres"
        password = f":{params['password']}" if params.get("password") else ""
        return f"postgresql://{user}{password}@{host}:{port}/{self.name}"


def new_database_name() -> str:
    return f"outreach_fault_{uuid.uuid4().hex[:12]}"


class TcpProxy:
    """Forwards TCP connections to a server; :meth:`cut` makes the server unreachable.

    Cut: live connections are closed and new ones refused (nothing listens on the port any more,
    as when a database host goes away). :meth:`restore` listens on the same port again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepting = threading.Event()
        self.connections = 0
        self.cuts = 0

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        listener.settimeout(0.05)
        self._listener = listener
        self._accepting.set()
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()
        return self

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._accepting.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()
        listener.close()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        """Refuse new connections and drop every live one."""
        self._accepting.clear()
        self.cuts += 1
        # The accept loop closes the listener within its poll interval; wait for the port to free.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    break
            time.sleep(0.02)
        with self._lock:
            live = list(self._sockets)
        for sock in live:
            self._close(sock)

    def restore(self) -> None:
        if not self._accepting.is_set():
            self.start()

    def close(self) -> None:
        self.cut()


class PrivateRedis:
    """A ``redis-server`` of the test's own that keeps nothing on disk, so a restart empties it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = self.client()
        try:
            wait_until(self._answers, timeout=10, interval=0.05, what="the private Redis to start")
        finally:
            client.close()
        return self

    def _answers(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False
        finally:
            client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Shut it down (SIGTERM: Redis's own clean shutdown, which saves nothing here)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()
        self.restarts += 1

    def keys(self) -> int:
        client = self.client()
        try:
            return int(client.dbsize())
        finally:
            client.close()
