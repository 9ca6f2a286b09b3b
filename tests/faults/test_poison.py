"""Scenario 6: poison messages, on the Procfile's worker, real Redis and PostgreSQL.

Messages whose ids name nothing, bodies that are junk or the wrong shape, messages for an actor
that does not exist, and hunts whose criteria were corrupted in the database: each ends in the
dead-letter queue (with the reason `outreach dlq list` shows) or as a failure recorded where an
operator sees it, while the good work around them, in the same queues and the same run, is done.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import dramatiq
import pytest

from producers.hunts import sweep
from storage import clock
from storage.db import database
from storage.models import Account, HuntRun, OutboxMessage, User
from tests.conftest import redis_client
from tests.faults.checks import broker_idle, dead_letters
from tests.faults.figures import Figures
from tests.faults.procfile import run_cli, wait_for_worker
from tests.processes import wait_until
from worker.actors.campaigns import run_campaign_batch
from worker.actors.delivery import deliver_outbox_message
from worker.actors.engagement import process_engagement_user
from worker.actors.hunts import process_hunt
from worker.hunts.definition import create_hunt
from worker.hunts.importing import import_lines
from worker.outbox import queue_message

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]

# Retries of a failing message come within a fraction of a second (the actors' own backoff is
# seconds to minutes); each actor keeps its own number of retries.
FAST_RETRIES = {"OUTREACH_RETRY_MIN_BACKOFF": "0.05", "OUTREACH_RETRY_MAX_BACKOFF": "0.2"}
GOOD_DELIVERIES = 30
NOWHERE = 999_999
# Bodies no Dramatiq worker can read: not UTF-8, JSON without a message's fields, a JSON list.
JUNK = (b"\x00\xff not even text", b'{"actor_name": "deliver_outbox_message"}', b"[1, 2, 3]")


def push_raw(client: Any, namespace: str, queue: str, body: bytes) -> str:
    """Put a body straight into an actor's queue, as something other than Dramatiq would."""
    redis_id = str(uuid.uuid4())
    client.hset(f"{namespace}:{queue}.msgs", redis_id, body)
    client.rpush(f"{namespace}:{queue}", redis_id)
    return redis_id


def dlq_list(env: dict[str, str]) -> list[dict[str, Any]]:
    listed = run_cli(env, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    return list(json.loads(listed.stdout))


def test_poison_messages_are_dead_lettered_with_their_reason_and_the_rest_is_delivered(
    fault_db, shared_redis, fault_env, processes, webhook, use_redis_broker, figures
):
    redis_url, namespace = shared_redis
    broker = use_redis_broker(redis_url, namespace)
    env = fault_env(fault_db.url, redis_url, namespace, **FAST_RETRIES)
    client = redis_client()
    # Given junk bodies at the head of the delivery and hunt queues...
    junk_ids = [push_raw(client, namespace, "delivery", body) for body in JUNK]
    junk_ids.append(push_raw(client, namespace, "hunt", JUNK[0]))
    # ...good deliveries queued through the outbox, with poison sent in between them
    poison: dict[tuple[str, tuple[Any, ...]], str] = {}

    def send(actor: dramatiq.Actor, *args: Any, error: str) -> None:
        actor.send_with_options(args=args)
        poison[(actor.actor_name, args)] = error

    good: list[int] = []
    with database.connection_context():
        for n in range(GOOD_DELIVERIES):
            row = queue_message(f"good:{n}", "webhook", f"+336200{n:05d}", f"Hello {n}")
            good.append(row.id)
            if n == 5:
                send(deliver_outbox_message, NOWHERE, error=f"outbox message {NOWHERE} does not")
                send(process_hunt, NOWHERE, error=f"hunt {NOWHERE} does not exist")
                send(run_campaign_batch, NOWHERE, 1, error=f"campaign {NOWHERE} does not exist")
                send(
                    process_engagement_user,
                    NOWHERE,
                    NOWHERE,
                    "inactivity_14d",
                    error=f"user {NOWHERE} has no engagement state",
                )
            if n == 15:
                send(deliver_outbox_message, "not-an-id", error="ValueError: invalid literal")
                send(process_hunt, error="TypeError")
    broker.enqueue(
        dramatiq.Message(
            queue_name="delivery",
            actor_name="no_such_actor",
            args=(1,),
            kwargs={},
            options={},
        )
    )
    poison[("no_such_actor", (1,))] = "ActorNotFound"
    # When the Procfile's worker works through all of it
    worker = processes.worker(env, processes=1, threads=4)
    wait_for_worker(worker)

    def settled() -> bool:
        dead = sum(dead_letters(client, namespace).values())
        # Every poison message, the two retry-exhausted handlers they set off, and the junk
        return (
            len(webhook.delivered_keys()) == GOOD_DELIVERIES
            and dead >= len(poison) + 2 + len(junk_ids)
            and broker_idle(client, namespace)
        )

    wait_until(settled, timeout=90, interval=0.3, what="good work done and poison dead-lettered")
    listed = dlq_list(env)
    with database.connection_context():
        rows = list(OutboxMessage.select().where(OutboxMessage.id.in_(good)))
    figures.record(
        Figures(
            "6 poison messages",
            sent=sum(1 for r in rows if r.status == "sent"),
            duplicates=len(webhook.recipients_reached_twice())
            + sum(webhook.repeated_keys().values()),
            lost=sum(1 for r in rows if r.status in ("queued", "sending")),
            unknown=sum(1 for r in rows if r.status == "unknown"),
            failed=len(listed),
            note=f"{len(listed)} dead-lettered, {len(junk_ids)} of them junk",
        )
    )

    # Then every good message was delivered, once, by a worker that is still running
    assert worker.alive()
    assert {r.status for r in rows} == {"sent"}
    assert webhook.delivered_keys() == {f"good:{n}" for n in range(GOOD_DELIVERIES)}
    assert webhook.repeated_keys() == {}
    # And each poison message is dead-lettered with the reason it died
    # (The retry-exhausted handlers' arguments are whole message dicts: compared as JSON.)
    by_message = {(d["actor"], json.dumps(d["args"])): d for d in listed}
    for (actor, args), error in poison.items():
        dead = by_message.get((actor, json.dumps(list(args))))
        assert dead is not None, f"{actor}{args} is not in the dead letters"
        assert error in (dead["error"] or ""), dead
    # And so are the handlers that ran when the malformed ones' retries were exhausted
    exhausted = {d["actor"] for d in listed if d["actor"].endswith("_exhausted")}
    assert exhausted == {"outbox_delivery_exhausted", "hunt_run_exhausted"}
    # And the junk bodies are listed as unreadable, on their queues, each with why
    unreadable = [d for d in listed if d["actor"] == "(unreadable)"]
    assert sorted(d["redis_id"] for d in unreadable) == sorted(junk_ids)
    assert {d["queue"] for d in unreadable} == {"delivery", "hunt"}
    assert all(d["error"].startswith("not a Dramatiq message") for d in unreadable)
    assert len(worker.events("broker.unreadable_message")) == len(junk_ids)
    # And an unreadable one cannot be requeued: one clear line, nothing moved
    refused = run_cli(env, "dlq", "requeue", junk_ids[0])
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        line for line in refused.stderr.splitlines() if line.startswith("error: ")
    ]
    assert "cannot be requeued" in refused.stderr
    assert len(dlq_list(env)) == len(listed)


CORRUPT_CRITERIA = {
    "not JSON": "not json {",
    "not an object": '"corrupt"',
    "a price as text": '{"price_min": "cheap"}',
    "an unknown key": '{"postal_codes": ["75"], "drop": "table hunt"}',
}
AD_COUNT = 8
PACING_LIMIT = 5


def _ad(n: int) -> bytes:
    published = clock.now() - timedelta(minutes=n)
    return json.dumps(
        {
            "source": "leboncoin",
            "external_id": f"ext-{n}",
            "title": f"Renault Clio {n}",
            "price": 8000,
            "location": {"postal_code": "75011", "city": "Paris"},
            "owner": {"name": f"Owner {n}", "phone": f"+33610{n:06d}"},
            "url": f"https://www.leboncoin.fr/ad/{n}",
            "published_at": published.isoformat(),
        }
    ).encode()


def test_hunts_with_corrupt_criteria_fail_on_record_and_the_sweep_goes_on(
    fault_db, shared_redis, fault_env, processes, webhook, use_redis_broker, figures
):
    redis_url, namespace = shared_redis
    use_redis_broker(redis_url, namespace)
    env = fault_env(fault_db.url, redis_url, namespace, **FAST_RETRIES)
    client = redis_client()
    # Given ads in Paris, a good hunt for them, and hunts whose criteria were corrupted in the
    # database after they were created (by hand, by a bad migration)
    with database.connection_context():
        now = clock.now()
        account = Account.create(name="Garage", timezone="Europe/Paris", created_at=now)
        owner = User.create(account=account, name="Claire", created_at=now)
        import_lines([_ad(n) for n in range(1, AD_COUNT + 1)], strict=True)
        spec = {
            "owner_id": owner.id,
            "name": "Good",
            "channels": ["webhook"],
            "credits": {"webhook": 100},
            "daily_pacing_limit": PACING_LIMIT,
            "message_template": "Bonjour {owner_name}, votre {title} m'intéresse.",
            "criteria": {"postal_codes": ["75"]},
        }
        good = create_hunt(spec).id
        corrupt = {}
        for what, stored in CORRUPT_CRITERIA.items():
            hunt_id = create_hunt({**spec, "name": what}).id
            database.execute_sql(
                f"UPDATE hunt SET criteria = {database.param} WHERE id = {database.param}",
                (stored, hunt_id),
            )
            corrupt[hunt_id] = what
    worker = processes.worker(env, processes=1, threads=4)
    wait_for_worker(worker)
    # When the daily sweep enqueues every hunt, and the worker runs them
    with database.connection_context():
        assert sweep(clock.now())["enqueued"] == 1 + len(corrupt)

    def runs() -> dict[int, HuntRun]:
        with database.connection_context():
            return {run.hunt_id: run for run in HuntRun.select()}

    wait_until(
        lambda: (
            all(r.finished_at or r.error for r in runs().values())
            and len(webhook.delivered_keys()) == PACING_LIMIT
            and broker_idle(client, namespace)
        ),
        timeout=90,
        interval=0.3,
        what="every hunt run to end, done or failed",
    )
    listed = dlq_list(env)
    settled = runs()
    with database.connection_context():
        rows = list(OutboxMessage.select())
    figures.record(
        Figures(
            "6 corrupt hunt criteria",
            sent=sum(1 for r in rows if r.status == "sent"),
            duplicates=len(webhook.recipients_reached_twice())
            + sum(webhook.repeated_keys().values()),
            lost=sum(1 for r in rows if r.status in ("queued", "sending")),
            unknown=sum(1 for r in rows if r.status == "unknown"),
            failed=len(corrupt),
            note=f"{len(corrupt)} hunts failed on record, the good one ran",
        )
    )

    # Then the good hunt contacted its day's limit, each owner once
    assert settled[good].error is None and settled[good].contacted == PACING_LIMIT
    assert {r.status for r in rows} == {"sent"} and len(rows) == PACING_LIMIT
    assert webhook.recipients_reached_twice() == {} and webhook.repeated_keys() == {}
    # And each corrupt hunt's run is failed with a reason naming the hunt and what is wrong
    for hunt_id in corrupt:
        assert settled[hunt_id].finished_at is None
        assert (settled[hunt_id].error or "").startswith(f"hunt {hunt_id}: stored ")
    assert "not JSON" in str(settled[_id_of(corrupt, "not JSON")].error)
    assert "'drop'" in str(settled[_id_of(corrupt, "an unknown key")].error)
    # And their messages are dead-lettered at once (refused, not retried), with the same reason
    dead_hunts = {d["args"][0]: d for d in listed if d["actor"] == "process_hunt"}
    assert set(dead_hunts) == set(corrupt)
    for hunt_id, dead in dead_hunts.items():
        assert dead["retries"] == 0
        assert f"hunt {hunt_id}: stored " in dead["error"]
    # And an operator sees the failure in the hunt's status, even when the criteria are not JSON
    status = run_cli(env, "hunt", "status", str(_id_of(corrupt, "not JSON")), "--json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["criteria"] == "(stored value is not JSON)"
    assert shown["last_run"]["error"].startswith("hunt ")
    assert dead_letters(client, namespace) == {"hunt.XQ": len(corrupt)}


def _id_of(corrupt: dict[int, str], what: str) -> int:
    return next(hunt_id for hunt_id, name in corrupt.items() if name == what)
