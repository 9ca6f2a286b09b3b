"""Pacing's cost and accuracy, on the real Redis and PostgreSQL. `python -m bench.pacing`.

1. Pacing off: plain outbox messages on the `log` channel (unpaced, no account, so no hours),
   queued in bulk then delivered by the Procfile-like worker: messages per second and worker
   CPU per message (compare with `outbox_floor` of `python -m bench.campaigns`).
2. Many paced senders: --senders WhatsApp senders (one per account, each its own WAHA session),
   each paced at exactly 1 message per --spacing seconds, --seconds of messages each, sent to a
   local WAHA stand-in: sends per second against the number of ready senders, the largest
   error of a gap between two sends of one sender, and worker CPU per send. Threads never wait
   for a slot (a row not yet allowed is a delayed message), so the rate is set by the senders.

Options: --plain N --senders N --seconds N --spacing S
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

from peewee import fn

from bench.common import (
    WORKER_PROCESSES,
    WORKER_THREADS,
    bench_environment,
    cpu_ms_per_message,
    load_average,
    report,
    wait_for,
    worker,
)


class _Arrivals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_session: dict[str, list[float]] = defaultdict(list)

    def add(self, session: str) -> None:
        with self.lock:
            self.by_session[session].append(time.monotonic())

    def count(self) -> int:
        with self.lock:
            return sum(len(times) for times in self.by_session.values())


def _waha_stand_in(arrivals: _Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            arrivals.add(body["session"])
            answer = b'{"id": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _sent(count: int) -> bool:
    from storage.models import OutboxMessage

    return OutboxMessage.select().where(OutboxMessage.status == "sent").count() >= count


def pacing_off(env: dict[str, str], messages: int) -> dict[str, Any]:
    from worker.outbox import Outgoing, queue_messages

    queue_messages(
        [Outgoing(f"plain-{n}", "log", f"+3361{n:07d}", "hello") for n in range(messages)]
    )
    start = time.perf_counter()
    with worker(env):
        seconds = wait_for(lambda: _sent(messages), timeout=600, interval=0.2)
    return {
        "messages": messages,
        "messages_per_second": round(messages / (time.perf_counter() - start), 1),
        "seconds_to_last_sent": round(seconds, 2),
        "worker_cpu_ms_per_message": cpu_ms_per_message(messages),
    }


def many_senders(env: dict[str, str], senders: int, seconds: int, spacing: float) -> dict[str, Any]:
    from storage import clock
    from storage.models import Account, OutboxMessage
    from worker.outbox import Outgoing, queue_messages
    from worker.senders import configure_sender

    arrivals = _Arrivals()
    server = _waha_stand_in(arrivals)
    per_sender = max(2, int(seconds / spacing))
    total = senders * per_sender
    for s in range(senders):
        account = Account.create(
            name=f"bench {s}", timezone="UTC", sending_hours="always", created_at=clock.now()
        )
        configure_sender(
            f"whatsapp:s{s}", account_id=account.id, min_spacing=spacing, max_spacing=spacing
        )
        queue_messages(
            [
                Outgoing(f"s{s}-{n}", "whatsapp", f"+336{s:04d}{n:04d}", "hi")
                for n in range(per_sender)
            ],
            account_id=account.id,
        )
    OutboxMessage.update(enqueued_at=clock.now()).execute()
    paced_env = {
        **env,
        "WAHA_URL": f"http://127.0.0.1:{server.server_port}/",
        "dramatiq_worker_timeout": "100",
    }
    with worker(paced_env):
        try:
            wait_for(lambda: arrivals.count() >= total, timeout=seconds * 10 + 120, interval=0.2)
        except TimeoutError:
            statuses = {
                status: count
                for status, count in OutboxMessage.select(OutboxMessage.status, fn.COUNT(1))
                .group_by(OutboxMessage.status)
                .tuples()
            }
            raise TimeoutError(f"{arrivals.count()} of {total} arrived; rows {statuses}") from None
    server.shutdown()
    firsts = [times[0] for times in arrivals.by_session.values()]
    lasts = [times[-1] for times in arrivals.by_session.values()]
    # The steady part: from the last sender's first send to the first sender's last send.
    steady_start, steady_end = max(firsts), min(lasts)
    steady = sum(
        sum(1 for t in times if steady_start <= t <= steady_end)
        for times in arrivals.by_session.values()
    )
    errors = [
        abs((b - a) - spacing) for times in arrivals.by_session.values() for a, b in pairwise(times)
    ]
    short = [e for times in arrivals.by_session.values() for e in _short_gaps(times, spacing)]
    rate = steady / (steady_end - steady_start) if steady_end > steady_start else 0.0
    return {
        "senders": senders,
        "spacing_seconds": spacing,
        "sends": arrivals.count(),
        "expected_sends": total,
        "steady_sends_per_second": round(rate, 1),
        "ready_senders_per_spacing": round(senders / spacing, 1),
        "rate_over_ready_senders": round(rate * spacing / senders, 3),
        "max_gap_error_seconds": round(max(errors), 3),
        "mean_gap_error_seconds": round(sum(errors) / len(errors), 3),
        "gaps_shorter_than_spacing": len(short),
        "worker_cpu_ms_per_send": cpu_ms_per_message(total),
    }


def _short_gaps(times: list[float], spacing: float) -> list[float]:
    return [b - a for a, b in pairwise(times) if b - a < spacing]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", type=int, default=5_000)
    parser.add_argument("--senders", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--spacing", type=float, default=1.0)
    args = parser.parse_args()
    figures: dict[str, Any] = {
        "worker": {"processes": WORKER_PROCESSES, "threads": WORKER_THREADS},
        "load_average_at_start": load_average(),
    }
    # One environment: this process's broker is set up once, on the first one's namespace.
    with bench_environment("pacing") as env:
        import worker.actors  # noqa: F401  (after the environment: the bench's broker)

        figures["pacing_off"] = pacing_off(env, args.plain)
        figures["many_senders"] = many_senders(env, args.senders, args.seconds, args.spacing)
    report(figures)


if __name__ == "__main__":
    main()
