"""The fault suite's machinery: real services, real processes, real receivers, and the figures.

- :class:`FaultDatabase`: a PostgreSQL database of the test's own, migrated, dropped afterwards;
- :class:`PrivateRedis`: a ``redis-server`` the test may shut down (the shared one never is);
- :class:`TcpProxy`: a TCP proxy in front of PostgreSQL that can be cut and restored;
- :class:`WebhookReceiver` and :class:`MailReceiver`: the far ends of the ``webhook`` and ``email``
  channels, counting what arrives per idempotency key and per recipient, with switchable
  misbehaviour (error answers, slow answers, dropped connections, refused connections);
- :class:`Processes`: the Procfile's ``worker`` and ``scheduler`` started as real processes, each in
  its own process group, killed by pid;
- :class:`FiguresReport`: what every scenario sent, doubled, lost and left unknown, printed at the
  end of the test session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
from aiosmtpd.controller import Controller

from tests.processes import BIN, ROOT, wait_until

# --- small helpers -------------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile_command(name: str, **variables: str) -> list[str]:
    """The Procfile's line for `name`, expanded by bash with `variables` in its environment."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return subprocess.run(
                ["bash", "-c", f"printf '%s\\n' {command.strip()}"],
                capture_output=True,
                text=True,
                check=True,
                env={"PATH": os.environ.get("PATH", ""), **variables},
            ).stdout.split()
    raise KeyError(name)


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One `outreach` command, as an operator types it."""
    return subprocess.run(
        [str(BIN / "outreach"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a process log (anything else, a traceback say, is skipped)."""
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


# --- PostgreSQL ----------------------------------------------------------------------------------


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


# --- Redis ---------------------------------------------------------------------------------------


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


# --- receivers -----------------------------------------------------------------------------------


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


# --- processes -----------------------------------------------------------------------------------


class Proc:
    """A started process (its own process group) and its log file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def lines(self) -> list[dict[str, Any]]:
        return json_lines(self.log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]


class Processes:
    """Starts the Procfile's processes; every one is killed by its process group at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Proc] = []
        self.kills = 0

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Proc:
        log = self.log_dir / f"{name}-{len(self.started)}.log"
        with log.open("ab") as handle:
            popen = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def worker(self, env: dict[str, str], processes: int = 2, threads: int = 8) -> Proc:
        """The Procfile's `worker:` line with WORKER_PROCESSES and WORKER_THREADS set."""
        command = procfile_command(
            "worker", WORKER_PROCESSES=str(processes), WORKER_THREADS=str(threads)
        )
        return self.start("worker", command, env)

    def scheduler(self, env: dict[str, str]) -> Proc:
        return self.start("scheduler", procfile_command("scheduler"), env)

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        """Signal the whole group (a dramatiq worker is a parent and its children)."""
        if not proc.alive():
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        if sig == signal.SIGKILL:
            self.kills += 1
            proc.popen.wait(timeout=10)

    def stop(self, proc: Proc, timeout: float = 10) -> int | None:
        """SIGTERM, then SIGKILL if it is still there after `timeout`; the exit status."""
        if proc.alive():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        return proc.popen.returncode

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.alive():
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                proc.popen.wait(timeout=10)


def wait_for_log(proc: Proc, event: str, timeout: float = 60, count: int = 1) -> None:
    wait_until(
        lambda: len(proc.events(event)) >= count,
        timeout=timeout,
        interval=0.1,
        what=f"{count} {event!r} in {proc.log.name}",
    )


def wait_for_worker(proc: Proc, timeout: float = 60) -> None:
    """Until the worker's processes have booted (Dramatiq says so in its log)."""
    wait_until(
        lambda: "Worker process is ready" in proc.text() or not proc.alive(),
        timeout=timeout,
        interval=0.1,
        what=f"the worker in {proc.log.name} to boot",
    )
    assert proc.alive(), f"the worker exited at boot:\n{proc.text()[-3000:]}"


# --- figures -------------------------------------------------------------------------------------


@dataclass
class Figures:
    """One scenario's count of what happened to the messages it asked for."""

    scenario: str
    sent: int  # rows recorded sent (and found at the receiver)
    duplicates: int  # a person holding two messages where one was due
    lost: int  # due work that ended neither done, recorded failed, nor visibly due
    unknown: int  # sends that died mid-way on a channel that does not deduplicate
    failed: int = 0  # recorded failures, with their reason
    repeats_absorbed: int = 0  # sent again to a receiver that dropped the key's second copy
    note: str = ""


class FiguresReport:
    """Fed by each scenario; printed at the end of the session (see conftest.py)."""

    def __init__(self) -> None:
        self.rows: list[Figures] = []
        self.lock = threading.Lock()

    def record(self, figures: Figures) -> Figures:
        with self.lock:
            self.rows.append(figures)
        return figures

    def lines(self) -> list[str]:
        header = ("scenario", "sent", "dupl.", "lost", "unknown", "failed", "re-sent*", "note")
        rows = [
            (
                f.scenario,
                str(f.sent),
                str(f.duplicates),
                str(f.lost),
                str(f.unknown),
                str(f.failed),
                str(f.repeats_absorbed),
                f.note,
            )
            for f in sorted(self.rows, key=lambda row: row.scenario)
        ]
        total = (
            "total",
            *(
                str(sum(getattr(f, name) for f in self.rows))
                for name in ("sent", "duplicates", "lost", "unknown", "failed", "repeats_absorbed")
            ),
            "",
        )
        table = [header, *rows, total]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        out = [
            "  ".join(
                cell.ljust(widths[i]) if i in (0, 7) else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            ).rstrip()
            for row in table
        ]
        out.append(
            "* re-sent: sends repeated after a crash to a receiver that deduplicates by key "
            "(dropped there, not duplicates)"
        )
        return out


FIGURES = FiguresReport()


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- reading the broker and the database ---------------------------------------------------------


def broker_idle(client: redis.Redis, namespace: str) -> bool:
    """Nothing waiting, delayed or in flight on this prefix: message bodies live in the queues'
    ``.msgs`` hashes until acknowledged (the dead letters' ``.XQ.msgs`` aside)."""
    return not broker_backlog(client, namespace)


def dead_letters(client: redis.Redis, namespace: str) -> dict[str, int]:
    """Dead-lettered messages per queue."""
    found = {}
    for key in client.scan_iter(match=f"{namespace}:*.XQ", count=1000):
        count = int(client.zcard(key))
        if count:
            found[key.decode().removeprefix(f"{namespace}:")] = count
    return found


def outbox_statuses() -> Counter[str]:
    from storage.db import database
    from storage.models import OutboxMessage

    with database.connection_context():
        query = OutboxMessage.select(OutboxMessage.status).tuples()
        return Counter(status for (status,) in query)


def wait_for(check: Callable[[], str], timeout: float, what: str, interval: float = 0.5) -> None:
    """Until `check` returns "" (done); otherwise it says what is still missing, and the last
    thing it said is in the error if time runs out."""
    deadline = time.monotonic() + timeout
    missing = "never checked"
    while time.monotonic() < deadline:
        missing = check()
        if not missing:
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {missing}")


def broker_backlog(client: redis.Redis, namespace: str) -> dict[str, int]:
    """Messages waiting, delayed or in flight per queue (empty when the broker is idle)."""
    found = {}
    for key in client.scan_iter(match=f"{namespace}:*.msgs", count=1000):
        name = key.decode()
        if not name.endswith(".XQ.msgs"):
            count = int(client.hlen(name))
            if count:
                found[name.removeprefix(f"{namespace}:").removesuffix(".msgs")] = count
    return found
