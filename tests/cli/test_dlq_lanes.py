"""A delivery that died on an account's lane is listed on that lane, and `outreach dlq requeue`
puts it back there (real Redis, the in-process worker)."""

from __future__ import annotations

import json

import dramatiq
import pytest

from tests.cli.conftest import outreach
from tests.processes import wait_until
from worker.delivery_queue import enqueue_deliveries, lane_of

pytestmark = pytest.mark.redis

ACCOUNT = 3
# An outbox id no row has: its delivery is refused at once (not retried) and dead-lettered.
MISSING_ROW = 987_654


def test_a_dead_delivery_stays_on_its_lane_and_is_requeued_there(db, redis_broker):
    # Given an account's delivery of a row that does not exist, worked until it dies
    lane = lane_of(ACCOUNT)
    enqueue_deliveries([MISSING_ROW], account_id=ACCOUNT)
    dead_key = f"{redis_broker.namespace}:{lane}.XQ"
    worker = dramatiq.Worker(redis_broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        wait_until(lambda: redis_broker.client.zcard(dead_key) == 1, timeout=30, what="it to die")
    finally:
        worker.stop()
    # When an operator lists the dead letters
    listed = json.loads(outreach("dlq", "list", "--json").stdout)
    # Then it is on the account's lane
    assert [(d["queue"], d["args"]) for d in listed] == [(lane, [[MISSING_ROW]])]
    # And requeued, it goes back on that lane
    result = outreach("dlq", "requeue", listed[0]["message_id"])
    assert result.exit_code == 0, result.output
    assert redis_broker.client.llen(f"{redis_broker.namespace}:{lane}") == 1
    assert redis_broker.client.zcard(dead_key) == 0
