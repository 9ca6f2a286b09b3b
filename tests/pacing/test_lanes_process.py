"""Fair shares measured with real workers: account A has 10,000 sends queued on the log channel
(unpaced), account B 10; two Procfile workers on real Redis serve their lanes in turns, so B's
ten go out after at most the bound of the rule (worker.delivery_queue.sends_ahead_at_most), not
after A's 10,000.

Who went first is read from the workers' JSON logs: every send is a `message.sent` line with
its wall-clock timestamp, and both workers run on this machine's clock.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from storage import clock as clock_module
from storage.db import database
from storage.models import Account, OutboxMessage
from tests.processes import wait_until, worker_process
from worker.delivery_queue import lane_of, sends_ahead_at_most
from worker.outbox import Outgoing, queue_messages

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.process]

BIG, SMALL = 10_000, 10
# Two worker processes as the Procfile starts them in tests (tests.processes: 4 threads each).
PROCESSES, THREADS = 2, 4


def queue_for(name: str, count: int) -> int:
    account = Account.create(name=name, sending_hours="always", created_at=clock_module.now())
    queue_messages(
        [Outgoing(f"{name}-{n}", "log", f"+336{n:08d}", "hello") for n in range(count)],
        account_id=account.id,
    )
    return int(account.id)


def sends(log_paths: list[Path]) -> list[tuple[datetime, str]]:
    """Every send of the workers' logs, as (when, idempotency key), in the order they went."""
    found = []
    for path in log_paths:
        for line in path.read_text().splitlines():
            if line.startswith("{") and '"message.sent"' in line:
                record = json.loads(line)
                when = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
                found.append((when, record["idempotency_key"]))
    return sorted(found)


def test_a_small_account_is_served_between_a_huge_accounts_sends(live_services, tmp_path):
    # Given account A with 10,000 log sends queued, then account B with 10, on two lanes
    with database.connection_context():
        a = queue_for("a", BIG)
        b = queue_for("b", SMALL)
    assert lane_of(a) != lane_of(b)

    def b_sent() -> bool:
        with database.connection_context():
            rows = OutboxMessage.select().where(
                (OutboxMessage.account_id == b) & (OutboxMessage.status == "sent")
            )
            return rows.count() == SMALL

    # When two worker processes start on them, and run until B's ten are sent
    logs = [tmp_path / f"worker-{n}.log" for n in range(PROCESSES)]
    with worker_process(live_services, logs[0]), worker_process(live_services, logs[1]):
        wait_until(b_sent, timeout=120, interval=0.2, what="B's ten sends")
    # Then B's ten went out before A had sent more than the rule's bound
    order = [key for _, key in sends(logs)]
    last_b = max(n for n, key in enumerate(order) if key.startswith("b-"))
    a_before = sum(1 for key in order[:last_b] if key.startswith("a-"))
    bound = sends_ahead_at_most(PROCESSES, THREADS)
    print(json.dumps({"a_sent_before_b_last": a_before, "bound": bound, "a_queued": BIG}))
    assert sorted(k for k in order if k.startswith("b-")) == sorted(f"b-{n}" for n in range(SMALL))
    assert a_before <= bound
