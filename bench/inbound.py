"""Inbound throughput, on the real Redis and PostgreSQL. `python -m bench.inbound`.

Signed WAHA `message` events (20,000 by default, each with its own message id) are posted by a
local load generator, 50 at a time over kept-alive connections, to one `web` process
(`outreach web`, uvicorn), and handled by a Procfile-like worker: members writing back
(activity) and a share of STOPs, which suppress and confirm. A tenth of the events are posted a
second time (WAHA's retries). Two phases, each with its own events: the `web` process alone
(the worker starts once the posts are done, as when the workers run on other machines), then
beside the worker (all of them sharing this machine's cores during the posts).

Figures, per phase: events accepted per second and the endpoint's p50/p99 latency as the
generator saw them; seconds from the first post until every event is handled, and the worker's
CPU per event. Over both: lost (accepted but not stored or not handled) and handled twice (more
confirmations than STOP senders). The bare no-op actor's rate for the same number of messages,
measured in the same run, is printed beside them.
Targets: >= 1,000 events/s accepted, p99 <= 50 ms (the web process alone), 0 lost, 0 handled
twice.

Options: --events N --concurrency N --members N --stop-every N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    bare_actor_rate,
    bench_environment,
    cpu_ms_per_message,
    figure,
    load_average,
    report,
    wait_for,
    web_process,
    worker,
)

ACCEPTED_TARGET = 1_000
P99_TARGET_MS = 50
KEY = "bench-webhook-key"
PORT = int(os.environ.get("OUTREACH_BENCH_WEB_PORT", "8765"))
# A tenth of the events come twice, as WAHA's retries would send them.
DUPLICATE_EVERY = 10


def _seed_members(members: int) -> int:
    """An account, its members (phone, WhatsApp id, engagement state) and one message we sent to
    each (what makes the account theirs), all made by the server."""
    from storage import clock
    from storage.db import database
    from storage.models import Account

    now = clock.now()
    account = Account.create(name="bench", created_at=now)
    naive = now.replace(tzinfo=None)
    database.execute_sql(
        "INSERT INTO app_user (account_id, name, phone, created_at) "
        "SELECT %s, 'Member ' || g, '+336' || lpad(g::text, 8, '0'), %s "
        "FROM generate_series(1, %s) g",
        (account.id, naive, members),
    )
    database.execute_sql(
        "INSERT INTO user_profile (user_id, preferred_destination, whatsapp_jid, locale, "
        "reengagement_opt_out, created_at) "
        "SELECT id, 'individual', substr(phone, 2) || '@c.us', 'en', false, %s FROM app_user",
        (naive,),
    )
    database.execute_sql(
        "INSERT INTO engagement_state (user_id, state, last_activity_at, version, updated_at) "
        "SELECT id, 'active', %s, 0, %s FROM app_user",
        (naive, naive),
    )
    database.execute_sql(
        "INSERT INTO outbox_message (idempotency_key, channel, recipient, body, source, status, "
        "attempts, created_at, account_id, address) "
        "SELECT 'greeting:' || id, 'log', substr(phone, 2) || '@c.us', 'hello', 'manual', "
        "'sent', 1, %s, account_id, substr(phone, 2) FROM app_user",
        (naive,),
    )
    return int(account.id)


def _bodies(events: int, members: int, stop_every: int) -> list[bytes]:
    bodies = []
    for n in range(events):
        member = n % members + 1
        text = "STOP" if stop_every and n % stop_every == 0 else f"hello {n}"
        event = {
            "event": "message",
            "session": "default",
            "payload": {
                "id": f"false_336{member:08d}@c.us_{n}",
                "from": f"336{member:08d}@c.us",
                "body": text,
                "fromMe": False,
            },
        }
        bodies.append(json.dumps(event).encode())
    return bodies


def _signed_requests(bodies: list[bytes]) -> list[bytes]:
    """Each body as a whole HTTP/1.1 request, signed now (a request is stale after 5 minutes)."""
    from storage import clock
    from worker.inbound.signature import sign

    at_ms = str(int(clock.now().timestamp() * 1000))
    requests = []
    for body in bodies:
        head = (
            f"POST /inbound/waha HTTP/1.1\r\nhost: 127.0.0.1:{PORT}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\nx-webhook-hmac: {sign(body, KEY)}\r\n"
            f"x-webhook-hmac-algorithm: sha512\r\nx-webhook-timestamp: {at_ms}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


async def _post_all(requests: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """Post every request over `concurrency` kept-alive connections; (seconds, latencies).

    A plain asyncio client: an HTTP library's own CPU per request would be the measure's
    ceiling on a 2-core machine, where the generator shares the cores with the server.
    """
    latencies: list[float] = []
    refused: list[bytes] = []
    pending = iter(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        try:
            for request in pending:
                began = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - began)
                if not head.startswith(b"HTTP/1.1 200"):
                    refused.append(head.split(b"\r\n", 1)[0])
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if refused:
        raise RuntimeError(f"{len(refused)} requests were refused, the first: {refused[0]!r}")
    return elapsed, latencies


def _post_phase(
    env: dict[str, str], bodies: list[bytes], concurrency: int, *, worker_during: bool
) -> dict:
    """Post `bodies` and a tenth of them again; the worker runs during the posts or only after.

    Returns the endpoint's figures and the seconds from the first post until every event of
    `bodies` is handled.
    """
    from storage.db import database
    from storage.models.consent import HANDLED, InboundEvent

    with database.connection_context():
        handled_before = InboundEvent.select().where(InboundEvent.status == HANDLED).count()
    retries = bodies[::DUPLICATE_EVERY]
    requests = _signed_requests(bodies + retries)

    def all_handled() -> bool:
        with database.connection_context():
            handled = InboundEvent.select().where(InboundEvent.status == HANDLED).count()
        return handled - handled_before >= len(bodies)

    start = time.perf_counter()
    if worker_during:
        with worker({**env, "OUTREACH_FORCE_LOG_CHANNEL": "true"}):
            elapsed, latencies = asyncio.run(_post_all(requests, concurrency))
            wait_for(all_handled, timeout=1800, interval=0.25)
            handled_seconds = time.perf_counter() - start
    else:
        elapsed, latencies = asyncio.run(_post_all(requests, concurrency))
        with worker({**env, "OUTREACH_FORCE_LOG_CHANNEL": "true"}):
            wait_for(all_handled, timeout=1800, interval=0.25)
            handled_seconds = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "worker": "during the posts" if worker_during else "started after the posts",
        "events": len(bodies),
        "posted_with_retries": len(requests),
        "accepted_per_second": round(len(requests) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "seconds_until_all_handled": round(handled_seconds, 3),
        "worker_cpu_ms_per_event": cpu_ms_per_message(len(bodies)),
    }


def inbound_run(env: dict[str, str], events: int, concurrency: int, members: int, stop_every: int):
    from storage.db import database
    from storage.models import OutboxMessage
    from storage.models.consent import HANDLED, InboundEvent, Suppression
    from storage.models.outbox import CONSENT_SOURCE

    with database.connection_context():
        _seed_members(members)
    # Two sets of events (their message ids apart), one for each phase.
    bodies = _bodies(2 * events, members, stop_every)
    log = Path(tempfile.gettempdir()) / f"bench-inbound-web-{PORT}.log"
    web = web_process({**env, "WAHA_WEBHOOK_KEY": KEY}, PORT, log)
    try:
        alone = _post_phase(env, bodies[:events], concurrency, worker_during=False)
        shared = _post_phase(env, bodies[events:], concurrency, worker_during=True)
    finally:
        os.killpg(web.pid, 15)
        web.wait(30)
    with database.connection_context():
        stored = InboundEvent.select().count()
        handled = InboundEvent.select().where(InboundEvent.status == HANDLED).count()
        confirmations = OutboxMessage.select().where(OutboxMessage.source == CONSENT_SOURCE).count()
        suppressed = Suppression.select().count()
    payloads = [json.loads(body)["payload"] for body in bodies]
    stop_addresses = len({p["from"] for p in payloads if p["body"] == "STOP"})
    return {
        "concurrency": concurrency,
        "web_alone": alone,
        "web_beside_worker": shared,
        "events": len(bodies),
        "stored": stored,
        "lost": len(bodies) - handled,
        "handled_twice": max(0, confirmations - stop_addresses),
        "stop_addresses": stop_addresses,
        "suppressed": suppressed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--stop-every", type=int, default=100)
    args = parser.parse_args()
    figures: dict = {"load_average_at_start": load_average()}
    with bench_environment("inbound") as env:
        import worker.actors  # noqa: F401  (after the environment: the bench's broker)

        figures["bare_actor"] = bare_actor_rate(env, args.events)
        figures["inbound"] = inbound_run(
            env, args.events, args.concurrency, args.members, args.stop_every
        )
    inbound = figures["inbound"]
    alone = inbound["web_alone"]
    figures["targets"] = {
        "accepted_per_second": ACCEPTED_TARGET,
        "p99_ms": P99_TARGET_MS,
        "lost": 0,
        "handled_twice": 0,
    }
    figures["meets_targets"] = (
        alone["accepted_per_second"] >= ACCEPTED_TARGET
        and alone["p99_ms"] <= P99_TARGET_MS
        and inbound["lost"] == 0
        and inbound["handled_twice"] == 0
    )
    report(figures)


def summary(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The figures asked of this bench, with their targets."""
    inbound = figures["inbound"]
    bare = figures["bare_actor"]["messages_per_second"]
    out: dict[str, dict[str, Any]] = {}
    for phase, label in (("web_alone", "web alone"), ("web_beside_worker", "beside the worker")):
        run = inbound[phase]
        name = f"inbound: {run['posted_with_retries']:,} signed events, {label}"
        out[f"{name}: accepted"] = figure(
            run["accepted_per_second"], "events/s", ACCEPTED_TARGET, bare_actor=bare
        )
        out[f"{name}: p99"] = figure(run["p99_ms"], "ms", P99_TARGET_MS, at_most=True)
    out["inbound: events lost"] = figure(inbound["lost"], "events", 0, at_most=True)
    twice = inbound["handled_twice"]
    out["inbound: events handled twice"] = figure(twice, "events", 0, at_most=True)
    return out


# What `python -m bench --quick` and `python -m bench` run.
QUICK_ARGS = ["--events", "2000"]
FULL_ARGS: list[str] = []


if __name__ == "__main__":
    main()
