"""Inbound throughput, on the real Redis and PostgreSQL. `python -m bench.inbound`.

Signed WAHA `message` events (20,000 by default, each with its own message id) are posted by a
local load generator, 50 at a time, to one `web` process (`outreach web`, uvicorn), while a
Procfile-like worker handles them: members writing back (activity) and a share of STOPs, which
suppress and confirm. A tenth of the events are posted a second time (WAHA's retries).

Figures: events accepted per second and the endpoint's p50/p99 latency as the generator saw
them; seconds until every event is handled; lost (accepted but not stored or not handled) and
handled twice (more confirmations than STOP senders). The bare no-op actor's rate for the same
number of messages, measured in the same run, is printed beside them.
Targets: >= 1,000 events/s accepted, p99 <= 50 ms, 0 lost, 0 handled twice.

Options: --events N --concurrency N --members N --stop-every N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import (
    ROOT,
    bare_actor_rate,
    bench_environment,
    load_average,
    report,
    wait_for,
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


async def _post_all(base: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    from storage import clock
    from worker.inbound.signature import sign

    signed = [
        (body, {"X-Webhook-Hmac": sign(body, KEY), "content-type": "application/json"})
        for body in bodies
    ]
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()
    for item in signed:
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def sender() -> None:
            nonlocal failures
            while not queue.empty():
                body, headers = queue.get_nowait()
                headers = {
                    **headers,
                    "X-Webhook-Timestamp": str(int(clock.now().timestamp() * 1000)),
                }
                began = time.perf_counter()
                response = await client.post("/inbound/waha", content=body, headers=headers)
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200:
                    failures += 1

        start = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{failures} requests were refused")
    return elapsed, latencies


def _web(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["outreach", "web", "--host", "127.0.0.1", "--port", str(PORT)],
        cwd=ROOT,
        env={**env, "WAHA_WEBHOOK_KEY": KEY},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(answers, timeout=60, interval=0.2)
    return proc


def inbound_run(env: dict[str, str], events: int, concurrency: int, members: int, stop_every: int):
    from storage.db import database
    from storage.models import OutboxMessage
    from storage.models.consent import HANDLED, InboundEvent, Suppression
    from storage.models.outbox import CONSENT_SOURCE

    with database.connection_context():
        _seed_members(members)
    bodies = _bodies(events, members, stop_every)
    retries = bodies[::DUPLICATE_EVERY]
    log = Path(tempfile.gettempdir()) / f"bench-inbound-web-{PORT}.log"
    web = _web(env, log)
    try:
        with worker({**env, "OUTREACH_FORCE_LOG_CHANNEL": "true"}):
            start = time.perf_counter()
            elapsed, latencies = asyncio.run(
                _post_all(f"http://127.0.0.1:{PORT}", bodies + retries, concurrency)
            )

            def all_handled() -> bool:
                with database.connection_context():
                    return (
                        InboundEvent.select().where(InboundEvent.status == HANDLED).count()
                        >= events
                    )

            wait_for(all_handled, timeout=1800, interval=0.25)
            handled_seconds = time.perf_counter() - start
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
    ordered = sorted(latencies)
    posted = len(bodies) + len(retries)
    return {
        "events": events,
        "posted_with_retries": posted,
        "concurrency": concurrency,
        "accepted_per_second": round(posted / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "seconds_until_all_handled": round(handled_seconds, 3),
        "stored": stored,
        "lost": events - handled,
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
    figures["targets"] = {
        "accepted_per_second": ACCEPTED_TARGET,
        "p99_ms": P99_TARGET_MS,
        "lost": 0,
        "handled_twice": 0,
    }
    figures["meets_targets"] = (
        inbound["accepted_per_second"] >= ACCEPTED_TARGET
        and inbound["p99_ms"] <= P99_TARGET_MS
        and inbound["lost"] == 0
        and inbound["handled_twice"] == 0
    )
    report(figures)


if __name__ == "__main__":
    main()
