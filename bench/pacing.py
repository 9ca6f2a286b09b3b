"""Pacing's cost and accuracy, on the real Redis and PostgreSQL. `python -m bench.pacing`.

1. Pacing off: outbox messages on the `log` channel (unpaced), queued in bulk as a campaign
   batch is (`queue_messages`, one account's rows at a time), then delivered by the
   Procfile-like worker. Twice over, in the order one lane, lanes, lanes, one lane: all of one
   account (one lane: what one delivery queue did before the lanes), and spread over one
   account per lane (every lane busy). Deliveries per second of each, their ratio (the target:
   lanes within 10% of one lane), and the bare actor's rate before and after, in the same run.
2. Many paced senders: --senders WhatsApp senders (one per account, each its own WAHA session),
   each paced at exactly 1 message per --spacing seconds, --seconds of messages each, sent to a
   local WAHA stand-in, by two worker processes run as the Procfile runs them: sends per
   second against the number of ready senders, the largest error of a gap between two sends of
   one sender, worker CPU per send, the whole machine's CPU per send (every process, PostgreSQL
   included), and thread occupancy (bench.occupancy: the share of worker-thread time spent
   processing messages, their CPU, and the longest message; a row not yet allowed is a delayed
   message, so no thread sleeps waiting for a slot, and no message lasts anything like a
   spacing). The bare actor's rate before and after it, in the same run, says how fast the
   machine was.

Options: --plain N --senders N --seconds N --spacing S (--plain 0 or --senders 0 skips a part)
The issue's figure: `python -m bench.pacing --senders 1000 --seconds 60`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import threading
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

from peewee import fn

from bench.common import (
    WORKER_PROCESSES,
    WORKER_THREADS,
    bare_actor_around,
    bench_environment,
    cpu_ms_per_message,
    figure,
    load_average,
    machine_busy_seconds,
    rate_over_bare,
    report,
    wait_for,
    worker,
)

# Log messages per pacing-off run (each of the four runs).
PLAIN_MESSAGES = 5_000
# Bare actor messages before and after the paced part: the machine's speed in the same run (the
# paced figure's target is absolute, but what it reaches moves with the machine).
PACED_BARE_MESSAGES = 10_000
# Where bench.occupancy's worker processes write their thread figures (its variable).
OCCUPANCY_DIR_VARIABLE = "OUTREACH_BENCH_OCCUPANCY_DIR"


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


# What the stand-in answers every send with (WAHA's answer carries the message's id).
_SENT = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"id": "ok"}'
)


class _WahaStandIn(asyncio.Protocol):
    """WAHA's sendText as far as the bench needs it: HTTP/1.1 kept alive, each POST's session
    recorded as it arrives, answered at once. One event loop in a thread, not a thread per
    connection: the stand-in shares the machine with what it measures, and Python's threading
    HTTP server took about a seventh of the machine's two cores at 500 sends a second."""

    def __init__(self, arrivals: _Arrivals) -> None:
        self.arrivals = arrivals
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        # An answer goes out at once, not held back by Nagle's algorithm.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").lower()
            length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.arrivals.add(json.loads(body)["session"])
            self.transport.write(_SENT)


class _StandIn:
    """The stand-in's server, on a port of its own, in a thread of its own."""

    def __init__(self, arrivals: _Arrivals) -> None:
        self.loop = asyncio.new_event_loop()
        server = self.loop.run_until_complete(
            self.loop.create_server(lambda: _WahaStandIn(arrivals), "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def shutdown(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def _sent(count: int) -> bool:
    from storage.models import OutboxMessage

    return OutboxMessage.select().where(OutboxMessage.status == "sent").count() >= count


def _deliver(env: dict[str, str], accounts: list[int], messages: int, tag: str) -> float:
    """Queue `messages` log messages spread evenly over `accounts`, deliver them; per second."""
    from storage.models import OutboxMessage
    from worker.outbox import Outgoing, queue_messages

    each = messages // len(accounts)
    for account in accounts:
        queue_messages(
            [
                Outgoing(f"{tag}-{account}-{n}", "log", f"+3361{n:07d}", "hello")
                for n in range(each)
            ],
            account_id=account,
        )
    total = each * len(accounts)
    pattern = f"{tag}-%"

    def done() -> bool:
        sent = OutboxMessage.select().where(
            OutboxMessage.idempotency_key**pattern & (OutboxMessage.status == "sent")
        )
        return sent.count() >= total

    start = time.perf_counter()
    with worker(env):
        wait_for(done, timeout=600, interval=0.2)
    return total / (time.perf_counter() - start)


def pacing_off(env: dict[str, str], messages: int) -> dict[str, Any]:
    """One lane against every lane, as one-lane, lanes, lanes, one-lane, between two floors."""
    from storage import clock
    from storage.models import Account
    from worker.delivery_queue import DELIVERY_LANES, lane_of

    accounts = [
        int(Account.create(name=f"plain {n}", sending_hours="always", created_at=clock.now()).id)
        for n in range(DELIVERY_LANES)
    ]
    assert len({lane_of(a) for a in accounts}) == DELIVERY_LANES

    def measure() -> dict[str, Any]:
        rates: dict[str, list[float]] = {"one_lane": [], "lanes": []}
        for number, kind in enumerate(("one_lane", "lanes", "lanes", "one_lane")):
            used = accounts[:1] if kind == "one_lane" else accounts
            rates[kind].append(_deliver(env, used, messages, f"{kind}{number}"))
        cpu = cpu_ms_per_message(messages)
        one, lanes = (sum(rates[k]) / len(rates[k]) for k in ("one_lane", "lanes"))
        return {
            "messages_per_run": messages,
            "one_lane_messages_per_second": round(one, 1),
            "lanes_messages_per_second": round(lanes, 1),
            "runs": {k: [round(r, 1) for r in v] for k, v in rates.items()},
            "lanes_over_one_lane": round(lanes / one, 3),
            "last_run_worker_cpu_ms_per_message": cpu,
        }

    floor, result = bare_actor_around(env, messages, measure)
    result["bare_actor"] = floor
    return result


def many_senders(env: dict[str, str], senders: int, seconds: int, spacing: float) -> dict[str, Any]:
    from storage import clock
    from storage.models import Account, OutboxMessage
    from worker.outbox import Outgoing, queue_messages
    from worker.senders import configure_sender

    arrivals = _Arrivals()
    server = _StandIn(arrivals)
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
    occupancy_dir = tempfile.mkdtemp(prefix="outreach-occupancy-")
    paced_env = {
        **env,
        "WAHA_URL": f"http://127.0.0.1:{server.port}/",
        OCCUPANCY_DIR_VARIABLE: occupancy_dir,
    }
    busy_before = machine_busy_seconds()
    with worker(paced_env, "bench.occupancy"):
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
    busy_after = machine_busy_seconds()
    server.shutdown()
    # A row is claimed once for its send, and once more each time it was put back for later
    # after a claim (rows put back before one are never claimed). Only this part's rows: the
    # pacing-off part's are in the same database.
    paced = OutboxMessage.channel == "whatsapp"
    claims = OutboxMessage.select(fn.SUM(OutboxMessage.attempts)).where(paced).scalar() or 0
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
        "claims_per_send": round(claims / total, 3),
        "worker_cpu_ms_per_send": cpu_ms_per_message(total),
        # Every process's: the workers', PostgreSQL's, Redis's, the stand-in's (two cores' worth
        # of it a second is all the machine has).
        "machine_cpu_ms_per_send": (
            round((busy_after - busy_before) * 1000 / total, 3)
            if busy_before is not None and busy_after is not None
            else None
        ),
        "threads": _occupancy(Path(occupancy_dir)),
    }


def _occupancy(folder: Path) -> dict[str, Any]:
    """The worker processes' thread figures (bench.occupancy), together."""
    runs = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    if not runs:
        return {"processes_reported": 0}
    capacity = sum(run["threads"] * run["wall_seconds"] for run in runs)
    busy = sum(run["busy_seconds"] for run in runs)
    cpu = sum(run["cpu_seconds"] for run in runs)
    messages = sum(run["messages"] for run in runs)
    return {
        "processes_reported": len(runs),
        "threads_each": runs[0]["threads"],
        "occupancy": round(busy / capacity, 4) if capacity else None,
        "busy_seconds": round(busy, 2),
        "busy_cpu_share": round(cpu / busy, 3) if busy else None,
        "messages": messages,
        "mean_message_ms": round(busy / messages * 1000, 2) if messages else None,
        "longest_message_ms": round(max(run["longest_message_seconds"] for run in runs) * 1000, 1),
        "sleeps_in_messages": sum(run["sleeps_in_messages"] for run in runs),
        "slept_seconds_in_messages": round(
            sum(run["slept_seconds_in_messages"] for run in runs), 3
        ),
    }


def _short_gaps(times: list[float], spacing: float) -> list[float]:
    return [b - a for a, b in pairwise(times) if b - a < spacing]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", type=int, default=PLAIN_MESSAGES)
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

        # 0 skips a part.
        if args.plain:
            figures["pacing_off"] = pacing_off(env, args.plain)
        if args.senders:
            floor, paced = bare_actor_around(
                env,
                PACED_BARE_MESSAGES,
                lambda: many_senders(env, args.senders, args.seconds, args.spacing),
            )
            figures["many_senders"] = {**paced, "bare_actor": floor}
    report(figures)


# Targets of the issue: lanes cost at most 10% of one lane's rate; sends keep up with 90% of
# the ready senders.
LANES_RATIO_TARGET = 0.9
READY_SENDERS_TARGET = 0.9


def summary(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The figures asked of this bench, with their targets."""
    out: dict[str, dict[str, Any]] = {}
    if "pacing_off" in figures:
        off = figures["pacing_off"]
        bare = off["bare_actor"]["messages_per_second"]
        out["pacing off (log): deliveries through 8 lanes over one lane"] = figure(
            off["lanes_over_one_lane"], "x one lane", LANES_RATIO_TARGET, bare_actor=bare
        )
        out["pacing off (log): deliveries through 8 lanes"] = rate_over_bare(
            off["lanes_messages_per_second"], bare
        )
    if "many_senders" in figures:
        paced = figures["many_senders"]
        name = f"paced: {paced['senders']:,} senders at 1 per {paced['spacing_seconds']:g} s"
        bare = paced.get("bare_actor", {}).get("messages_per_second")
        out[f"{name}, sends over ready senders"] = figure(
            paced["rate_over_ready_senders"],
            "x ready senders",
            READY_SENDERS_TARGET,
            bare_actor=bare,
        )
        out[f"{name}, max gap error"] = figure(paced["max_gap_error_seconds"], "s")
        out[f"{name}, worker CPU a send"] = figure(paced["worker_cpu_ms_per_send"], "ms")
        out[f"{name}, the machine's CPU a send"] = figure(
            paced.get("machine_cpu_ms_per_send"), "ms"
        )
        threads = paced["threads"]
        out[f"{name}, thread occupancy"] = figure(threads.get("occupancy"), "of thread time")
        out[f"{name}, longest message"] = figure(threads.get("longest_message_ms"), "ms")
        out[f"{name}, thread time slept in messages"] = figure(
            threads.get("slept_seconds_in_messages"), "s", 0, at_most=True
        )
    return out


# What `python -m bench --quick` and `python -m bench` run. Pacing off needs more delivery
# messages a lane than a worker process fetches ahead (16 with 8 threads): with fewer, the first
# process takes every lane's backlog and the figure measures that, not the lanes.
QUICK_ARGS = ["--plain", "10000", "--senders", "100", "--seconds", "15"]
FULL_ARGS = ["--plain", "20000", "--senders", "1000", "--seconds", "60"]


if __name__ == "__main__":
    main()
