"""Scenario 4: the receiving end misbehaves, on the Procfile's worker, real Redis and PostgreSQL.

A campaign goes out while its receiver refuses connections for a while, then answers 429s and
500s, answers too late, and drops connections: every send is retried with backoff until it goes
through, once per recipient. A recipient refused for good (a 4xx, an SMTP 5xx) is `failed` with
the receiver's reason after one try, and the campaign goes on to complete. Once on the `webhook`
channel (whose receiver keeps the idempotency key) and once on `email` (SMTP: 4xx is "later").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from producers.campaigns import tick
from storage import clock
from storage.db import database
from storage.models import Account, Campaign, Contact, ContactList, OutboxMessage, User
from tests.conftest import T0, redis_client
from tests.faults.checks import broker_idle, dead_letters
from tests.faults.figures import Figures
from tests.faults.procfile import Proc, run_cli, wait_for_worker
from tests.processes import wait_until
from worker.campaigns.create import CampaignSpec, create_campaign

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]

# Retries start 0.2 s apart and double up to 1 s (seconds in production): 8 retries take 3.6 s
# at the least, far more than the few failures any one message meets here.
RETRY_MIN_BACKOFF_MS = 200
RETRY_MAX_BACKOFF_MS = 1_000
RETRIES = {
    "OUTREACH_RETRY_MIN_BACKOFF": str(RETRY_MIN_BACKOFF_MS / 1000),
    "OUTREACH_RETRY_MAX_BACKOFF": str(RETRY_MAX_BACKOFF_MS / 1000),
}
# The webhook case's network timeout, and how long a slow answer takes.
CHANNEL_TIMEOUT = 1.0
SLOW_ANSWER = 2.5


def _campaign(channel: str, addresses: list[str]) -> tuple[int, dict[str, int]]:
    """A running-soon campaign to one contact per address; (campaign id, contact id by address)."""
    now = clock.now()
    account = Account.create(name="Bakery", created_at=now)
    owner = User.create(account=account, name="Alice", created_at=now)
    contact_list = ContactList.create(name="customers", created_at=now)
    contacts = {}
    for n, address in enumerate(addresses):
        where = {"email": address} if "@" in address else {"phone": address}
        contact = Contact.create(
            contact_list=contact_list, first_name=f"Name{n}", created_at=now, **where
        )
        contacts[address] = contact.id
    campaign = create_campaign(
        CampaignSpec.from_mapping(
            {
                "owner_id": owner.id,
                "name": "Spring",
                "channel": channel,
                "contact_list": "customers",
                "template": "Hello {Name}, our spring offer is here.",
                "daily_send_limit": len(addresses),
                "start_at": T0.isoformat(),
            }
        )
    )
    return int(campaign.id), contacts


def _rows() -> dict[str, OutboxMessage]:
    """The campaign's outbox rows by recipient."""
    with database.connection_context():
        return {row.recipient: row for row in OutboxMessage.select()}


def _recipients(campaign_id: int) -> dict[int, tuple[str, str | None]]:
    with database.connection_context():
        campaign = Campaign.get_by_id(campaign_id)
        return {r.contact_id: (r.status, r.error) for r in campaign.recipients}


def _campaign_status(campaign_id: int) -> str:
    with database.connection_context():
        return str(Campaign.get_by_id(campaign_id).status)


def _retry_delays(worker: Proc) -> list[int]:
    """The waits Dramatiq chose before each retry, as its log says them."""
    delays = []
    for line in worker.lines():
        event = str(line.get("event", ""))
        if event.startswith("Retrying message") and event.endswith("milliseconds."):
            delays.append(int(event.split(" in ")[-1].split()[0]))
    return delays


def _send_the_batch(
    campaign_id: int,
    start_receiver: Callable[[], None],
    rows_expected: int,
    client: redis.Redis,
    namespace: str,
) -> None:
    """The campaign's batch goes out against a receiver that is down; the receiver comes back
    once every send has failed against it; then until the campaign is complete."""
    with database.connection_context():
        assert tick(clock.now())["enqueued"] == 1
    _serve_once_all_refused(start_receiver, rows_expected)
    wait_until(
        lambda: _campaign_status(campaign_id) == "completed" and broker_idle(client, namespace),
        timeout=90,
        interval=0.2,
        what="the campaign to complete",
    )


def _serve_once_all_refused(start: Callable[[], None], rows_expected: int) -> None:
    """The receiver stays down until every message has failed against it at least once."""

    def all_refused() -> bool:
        rows = _rows().values()
        return len(rows) == rows_expected and all(
            row.attempts >= 1 and "unreachable" in (row.last_error or "") for row in rows
        )

    wait_until(all_refused, timeout=60, interval=0.05, what="every send to meet a closed port")
    start()


def _record(figures: Any, scenario: str, receiver: Any, rows: dict[str, OutboxMessage]) -> None:
    delivered = receiver.delivered_keys()
    figures.record(
        Figures(
            scenario,
            sent=sum(1 for r in rows.values() if r.status == "sent"),
            duplicates=len(receiver.recipients_reached_twice())
            + (0 if receiver.deduplicates else sum(receiver.repeated_keys().values())),
            lost=sum(1 for r in rows.values() if r.status in ("queued", "sending"))
            + sum(
                1
                for r in rows.values()
                if r.status == "sent" and r.idempotency_key not in delivered
            ),
            unknown=sum(1 for r in rows.values() if r.status == "unknown"),
            failed=sum(1 for r in rows.values() if r.status == "failed"),
            repeats_absorbed=sum(receiver.repeated_keys().values()) if receiver.deduplicates else 0,
            note=f"{receiver.request_count()} requests for {len(rows)} messages",
        )
    )


def test_a_misbehaving_webhook_receiver_gets_each_message_once_after_retries(
    fault_db, shared_redis, fault_env, processes, webhook, use_redis_broker, figures
):
    redis_url, namespace = shared_redis
    use_redis_broker(redis_url, namespace)
    env = fault_env(
        fault_db.url, redis_url, namespace, OUTREACH_CHANNEL_TIMEOUT=str(CHANNEL_TIMEOUT), **RETRIES
    )
    client = redis_client()
    # Given a campaign to 12 people over the webhook, and a receiver that will misbehave:
    fine = [f"+3361000000{n}" for n in range(5)]
    rate_limited, failing, unavailable = "+33620000001", "+33620000002", "+33620000003"
    slow, dropped = "+33620000004", "+33620000005"
    bad_request, gone = "+33630000001", "+33630000002"
    addresses = [*fine, rate_limited, failing, unavailable, slow, dropped, bad_request, gone]
    # two 429s, two 500s, two 503s, an answer after the timeout, a connection dropped unanswered
    webhook.misbehave(status=429, times=2, recipients={rate_limited})
    webhook.misbehave(status=500, times=2, recipients={failing})
    webhook.misbehave(status=503, times=2, recipients={unavailable})
    webhook.misbehave(delay=SLOW_ANSWER, times=1, recipients={slow})
    webhook.misbehave(drop=True, times=1, recipients={dropped})
    # and two recipients refused for good
    webhook.refuse_for_good(bad_request, 400)
    webhook.refuse_for_good(gone, 410)
    with database.connection_context():
        campaign_id, contacts = _campaign("webhook", addresses)
    # And, to begin with, nothing listening on the receiver's port
    webhook.refuse_connections()
    worker = processes.worker(env, processes=1, threads=4)
    wait_for_worker(worker)
    # When the campaign's batch goes out, and the receiver comes back once all have failed
    _send_the_batch(campaign_id, webhook.accept_connections, len(addresses), client, namespace)
    rows = _rows()
    _record(figures, "4 webhook receiver misbehaving", webhook, rows)
    requests = webhook.tally.requests

    # Then everyone else got the message, exactly once, after retries
    delivered = {r for r, row in rows.items() if row.status == "sent"}
    assert delivered == set(addresses) - {bad_request, gone}
    assert webhook.delivered_keys() == {rows[r].idempotency_key for r in delivered}
    assert webhook.recipients_reached_twice() == {}
    assert all(rows[r].attempts >= 2 for r in delivered)  # the closed port, then more
    # And each misbehaviour cost exactly the requests it should: the error answers, then one
    assert [requests[rows[r].idempotency_key] for r in (rate_limited, failing, unavailable)] == [
        3,
        3,
        3,
    ]
    assert requests[rows[dropped].idempotency_key] == 2
    # (the slow answer arrived after the client gave up: the receiver dropped it as a repeat)
    assert requests[rows[slow].idempotency_key] == 2
    assert set(webhook.repeated_keys()) <= {rows[slow].idempotency_key}
    # And the retries waited as configured (the logged waits are Dramatiq's computed backoff).
    # The batch's sends are one delivery message, retried as long as a send in it waits: once
    # for the closed port, then twice more for the second error answers
    delays = _retry_delays(worker)
    assert len(delays) >= 3
    assert all(RETRY_MIN_BACKOFF_MS <= d <= RETRY_MAX_BACKOFF_MS for d in delays)
    # And the two refused for good are failed with the receiver's reason, after one request each
    recipients = _recipients(campaign_id)
    for address, status in ((bad_request, 400), (gone, 410)):
        row = rows[address]
        assert row.status == "failed"
        assert f"webhook answered HTTP {status}" in row.last_error
        assert requests[row.idempotency_key] == 1
        assert recipients[contacts[address]][0] == "failed"
        assert f"HTTP {status}" in (recipients[contacts[address]][1] or "")
    # And the campaign went on: completed, with the failures counted where an operator looks
    shown = run_cli(env, "campaign", "status", str(campaign_id), "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["status"], report["sent"], report["failed"], report["remaining"]) == (
        "completed",
        len(addresses) - 2,
        2,
        0,
    )
    assert dead_letters(client, namespace) == {}


def test_smtp_later_answers_are_retried_and_refusals_are_failed(
    fault_db, shared_redis, fault_env, processes, mailbox, use_redis_broker, figures
):
    redis_url, namespace = shared_redis
    use_redis_broker(redis_url, namespace)
    env = fault_env(fault_db.url, redis_url, namespace, **RETRIES)
    client = redis_client()
    # Given a campaign to 8 people by email, and a mail server that will misbehave:
    fine = [f"person{n}@example.org" for n in range(4)]
    greylisted, busy, closing = "grey@example.org", "busy@example.org", "closing@example.org"
    unknown_user = "nobody@example.org"
    addresses = [*fine, greylisted, busy, closing, unknown_user]
    # 451 twice ("try again later"), 452 once, a 421 that closes the connection
    mailbox.misbehave(status=451, times=2, recipients={greylisted})
    mailbox.misbehave(status=452, times=1, recipients={busy})
    mailbox.misbehave(drop=True, times=1, recipients={closing})
    # and a mailbox that does not exist (550 at RCPT)
    mailbox.refuse_for_good(unknown_user, 550)
    with database.connection_context():
        campaign_id, contacts = _campaign("email", addresses)
    # And, to begin with, the mail server is down
    mailbox.stop()
    worker = processes.worker(env, processes=1, threads=4)
    wait_for_worker(worker)
    # When the batch goes out, and the server comes back once every send has failed against it
    _send_the_batch(campaign_id, mailbox.start, len(addresses), client, namespace)
    rows = _rows()
    _record(figures, "4 SMTP server misbehaving", mailbox, rows)
    requests = mailbox.tally.requests

    # Then everyone with a mailbox holds exactly one copy (email does not deduplicate)
    delivered = {r for r, row in rows.items() if row.status == "sent"}
    assert delivered == set(addresses) - {unknown_user}
    assert mailbox.delivered_keys() == {rows[r].idempotency_key for r in delivered}
    assert mailbox.repeated_keys() == {} and mailbox.recipients_reached_twice() == {}
    # And each "later" answer was retried until the message was taken
    assert requests[rows[greylisted].idempotency_key] == 3
    assert requests[rows[busy].idempotency_key] == 2
    assert requests[rows[closing].idempotency_key] == 2
    assert all(rows[r].attempts >= 2 for r in delivered)
    delays = _retry_delays(worker)
    assert all(RETRY_MIN_BACKOFF_MS <= d <= RETRY_MAX_BACKOFF_MS for d in delays)
    # And the unknown mailbox is failed with the server's answer, after one conversation
    refused = rows[unknown_user]
    assert refused.status == "failed"
    assert "recipient refused" in refused.last_error and "550" in refused.last_error
    assert requests[refused.idempotency_key] == 0  # refused at RCPT: the message never went
    status, error = _recipients(campaign_id)[contacts[unknown_user]]
    assert status == "failed" and "550" in (error or "")
    assert _campaign_status(campaign_id) == "completed"
    assert dead_letters(client, namespace) == {}
