"""Deliveries put back for later wait in Redis as their rows' ids, and the ids of a lane due
together leave as one delivery message (worker.redis_delays, "Delayed ids").

On fakeredis and on the real Redis (`any_redis_broker`), with Dramatiq's own worker.
"""

from __future__ import annotations

import threading
import time
import uuid

import dramatiq
import pytest
from dramatiq.common import current_millis
from dramatiq.encoder import PickleEncoder

from producers.status import queue_depths
from tests.foundation.test_redis_delays import moved_at_once
from worker.delivery_queue import (
    DELIVER_GROUP_ACTOR,
    DELIVERY_GROUP,
    PACED_GROUP,
    PACED_QUEUE,
    clock_millis,
    enqueue_later_on,
    enqueue_many_later,
    lane_of,
    move_next_rows_later,
)
from worker.redis_delays import SLOTS_KEPT_MS, Delays, body_parts


def _on_queue(broker, queue: str) -> list[dramatiq.Message]:
    """The messages waiting on `queue`, in order."""
    key = f"{broker.namespace}:{queue}"
    ids = broker.client.lrange(key, 0, -1)
    bodies = broker.client.hmget(f"{key}.msgs", ids) if ids else []
    return [dramatiq.Message.decode(body) for body in bodies]


def test_rows_put_back_by_two_accounts_of_a_lane_leave_together_when_due(any_redis_broker):
    # Given two accounts on the same lane
    broker = any_redis_broker
    lane = lane_of(7)
    assert lane_of(15) == lane
    # When rows of both are put back for 5 s, and one for a minute
    enqueue_many_later([([1, 2], 5_000, 7), ([3], 5_000, 15), ([4], 60_000, 7)])
    # Then they wait as ids, not as messages, and `outreach status` counts them as delayed
    assert broker.delays.count(lane) == 4
    assert broker.client.zcard(f"{broker.namespace}:{lane}.delayed") == 0
    [depth] = [d for d in queue_depths(broker) if d["queue"] == lane]
    assert depth["delayed"] == 4 and depth["ready"] == 0
    # When their time has not come, nothing moves
    assert broker.delays.move_due([lane], current_millis()) == 0
    # When the first three are due, they leave as one delivery message on the lane
    assert broker.delays.move_due([lane], current_millis() + 10_000) == 1
    [message] = _on_queue(broker, lane)
    assert message.actor_name == DELIVER_GROUP_ACTOR
    assert message.queue_name == lane
    assert message.args == ([1, 2, 3],)
    assert message.options["redis_message_id"] == message.message_id
    assert abs(message.message_timestamp - (current_millis() + 10_000)) < 5_000
    # And the last one still waits for its own time, then leaves alone
    assert broker.delays.count(lane) == 1
    assert broker.delays.move_due([lane], current_millis() + 61_000) == 1
    assert [m.args for m in _on_queue(broker, lane)] == [([1, 2, 3],), ([4],)]
    assert broker.delays.count(lane) == 0


def test_due_rows_leave_in_groups_in_the_order_they_came_due(any_redis_broker):
    # Given more rows of one account due than a delivery message holds, each due 1 ms later
    broker = any_redis_broker
    count = DELIVERY_GROUP * 2 + 7
    enqueue_many_later([([n], 1_000 + n, 3) for n in range(count)])
    # When they are all due
    moved = broker.delays.move_due([lane_of(3)], current_millis() + 10_000)
    # Then they leave in full groups and a last one, in the order of their times
    messages = _on_queue(broker, lane_of(3))
    assert moved == len(messages) == 3
    assert [len(m.args[0]) for m in messages] == [DELIVERY_GROUP, DELIVERY_GROUP, 7]
    assert [i for m in messages for i in m.args[0]] == list(range(count))
    assert len({m.message_id for m in messages}) == 3


def test_rows_due_on_the_paced_queue_leave_in_smaller_messages_whatever_their_account(
    any_redis_broker,
):
    # Given 30 rows of accounts on every lane put back until their slots on the paced queue,
    # and as many put back on one account's lane
    broker = any_redis_broker
    count = 30
    enqueue_later_on([([n], 1_000 + n, PACED_QUEUE) for n in range(count)])
    enqueue_later_on([([100 + n], 1_000 + n, lane_of(3)) for n in range(count)])
    assert broker.delays.count(PACED_QUEUE) == count
    # When they are all due
    broker.delays.move_due([PACED_QUEUE, lane_of(3)], current_millis() + 10_000)
    # Then the paced queue's leave in messages of PACED_GROUP, in the order of their times,
    # and the lane's in one message of up to a group
    paced = _on_queue(broker, PACED_QUEUE)
    assert PACED_GROUP < count <= DELIVERY_GROUP
    assert [len(m.args[0]) for m in paced] == [PACED_GROUP] * (count // PACED_GROUP) + (
        [count % PACED_GROUP] if count % PACED_GROUP else []
    )
    assert [i for m in paced for i in m.args[0]] == list(range(count))
    assert all(m.queue_name == PACED_QUEUE for m in paced)
    assert [m.args for m in _on_queue(broker, lane_of(3))] == [([100 + n for n in range(count)],)]


def test_a_row_put_back_twice_waits_for_its_latest_time_once(any_redis_broker):
    # Given a row put back for 5 s, then (claimed again meanwhile) put back for a minute
    broker = any_redis_broker
    lane = lane_of(5)
    enqueue_many_later([([42], 5_000, 5)])
    enqueue_many_later([([42], 60_000, 5)])
    # Then one delivery of it waits, for the later time
    assert broker.delays.count(lane) == 1
    assert broker.delays.move_due([lane], current_millis() + 10_000) == 0
    assert broker.delays.move_due([lane], current_millis() + 61_000) == 1
    assert [m.args for m in _on_queue(broker, lane)] == [([42],)]


def test_due_rows_leave_once_however_many_consumers_move_them(any_redis_broker):
    # Given 300 rows of one lane due a moment from now
    broker = any_redis_broker
    lane = lane_of(2)
    enqueue_many_later([([n], 1, 2) for n in range(300)])
    # When eight consumers move what is due at the same moment
    moved = moved_at_once(broker, lane, current_millis() + 1_000)
    # Then every row is in exactly one message on the lane
    ids = [i for m in _on_queue(broker, lane) for i in m.args[0]]
    assert sorted(ids) == list(range(300))
    assert sum(moved) == len(_on_queue(broker, lane))


def test_a_process_that_does_not_know_the_delivery_actor_leaves_due_rows_waiting(
    any_redis_broker,
):
    # Given rows put back a moment, and a process whose broker never declared the delivery
    # actor (so it cannot write its messages)
    broker = any_redis_broker
    lane = lane_of(1)
    enqueue_many_later([([1, 2], 1, 1)])
    stranger = Delays(broker.client, broker.namespace)
    # When it moves what is due, then the rows still wait, for a process that knows
    assert stranger.move_due([lane], current_millis() + 1_000) == 0
    assert broker.delays.count(lane) == 2
    assert broker.delays.move_due([lane], current_millis() + 1_000) == 1


def test_a_worker_runs_the_message_made_of_due_ids_once(any_redis_broker):
    # Given an actor taking a list of ids, whose delayed ids this broker moves in threes
    broker = any_redis_broker
    queue = f"ids_{uuid.uuid4().hex[:8]}"
    runs: list[list[int]] = []
    ran = threading.Event()

    @dramatiq.actor(actor_name=queue, queue_name=queue, max_retries=0)
    def handle(ids: list[int]) -> None:
        runs.append(ids)
        if sum(len(r) for r in runs) == 5:
            ran.set()

    broker.delays.move_ids_as(queue, 3)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        # When five ids are put back for 0.5 s
        sent = time.monotonic()
        broker.delays.add_ids({queue: [(n, current_millis() + 500) for n in range(5)]})
        # Then the worker runs them, in two messages made by the move, once each
        assert ran.wait(15), f"the ids never all ran: {runs}"
        time.sleep(0.3)
    finally:
        worker.stop()
    assert time.monotonic() - sent >= 0.5
    assert sorted(i for r in runs for i in r) == [0, 1, 2, 3, 4]
    assert sorted(len(r) for r in runs) == [2, 3]
    assert broker.delays.count(queue) == 0
    assert broker.client.hlen(f"{broker.namespace}:{queue}.msgs") == 0


def test_an_encoder_whose_messages_cannot_be_written_by_the_move_is_refused():
    # Given Dramatiq set to pickle its messages, when a process asks how to write delivery
    # messages, then it is told it cannot, rather than writing bodies no worker can read
    dramatiq.set_encoder(PickleEncoder())
    try:
        with pytest.raises(ValueError, match="cannot write"):
            body_parts(DELIVER_GROUP_ACTOR)
    finally:
        dramatiq.set_encoder(dramatiq.JSONEncoder())


def _due(broker, outbox_id: int) -> float | None:
    """When the row's delayed id on the paced queue is due (ms), None once it no longer waits."""
    return broker.client.zscore(broker.delays.keys(PACED_QUEUE)[2], str(outbox_id))


def test_a_late_send_moves_only_its_senders_next_waiting_row_and_only_later(any_redis_broker):
    # Given sender 7's rows 1, 2 and 3 waiting for their slots (1 s apart, each due on its
    # slot), and sender 8's row 4 holding the same slot as row 2
    broker = any_redis_broker
    slot = clock_millis() + 60_000
    enqueue_later_on(
        [([1], 60_000, PACED_QUEUE), ([2, 4], 61_000, PACED_QUEUE), ([3], 62_000, PACED_QUEUE)],
        held=[(7, 1, slot), (7, 2, slot + 1_000), (7, 3, slot + 2_000), (8, 4, slot + 1_000)],
    )
    before = {n: _due(broker, n) for n in (1, 2, 3, 4)}
    # When sender 7's send on row 1's slot went 250 ms later than its slot allowed for
    moved = broker.delays.move_later(PACED_QUEUE, [(7, slot, 250)])
    # Then its next row (2) is due 250 ms after its own slot, and nothing else moved
    assert moved == 1
    assert _due(broker, 2) == slot + 1_000 + 250 > before[2]
    assert {n: _due(broker, n) for n in (1, 3, 4)} == {n: before[n] for n in (1, 3, 4)}
    # When a smaller lateness is reported for the same slot, the row keeps its later time
    assert broker.delays.move_later(PACED_QUEUE, [(7, slot, 100)]) == 0
    assert _due(broker, 2) == slot + 1_000 + 250
    # And a send on row 2's slot drops row 1's slot from the sender's set
    key = broker.delays.slots_key(PACED_QUEUE, 7)
    assert broker.client.zscore(key, "1") == slot
    broker.delays.move_later(PACED_QUEUE, [(7, slot + 1_000, 0)])
    assert broker.client.zscore(key, "1") is None
    assert [int(i) for i in broker.client.zrange(key, 0, -1)] == [2, 3]


def test_a_row_no_longer_waiting_is_not_put_back_by_a_move(any_redis_broker):
    # Given sender 7's rows 1 and 2 held on their slots, the second already moved onto the
    # queue (due, or fetched)
    broker = any_redis_broker
    slot = clock_millis() + 1_000
    enqueue_later_on(
        [([1], 1_000, PACED_QUEUE), ([2], 2_000, PACED_QUEUE)],
        held=[(7, 1, slot), (7, 2, slot + 1_000)],
    )
    broker.delays.move_due([PACED_QUEUE], current_millis() + 5_000)
    # When a late send of row 1 moves the sender's next row
    assert broker.delays.move_later(PACED_QUEUE, [(7, slot, 500)]) == 0
    # Then no delayed id comes back: the row leaves once
    assert broker.delays.count(PACED_QUEUE) == 0
    assert sorted(i for m in _on_queue(broker, PACED_QUEUE) for i in m.args[0]) == [1, 2]


def test_a_senders_slots_are_kept_a_day_after_its_last(any_redis_broker):
    # Given a sender's rows held on slots up to an hour ahead
    broker = any_redis_broker
    hour = 3_600_000
    enqueue_later_on(
        [([1], 1_000, PACED_QUEUE), ([2], hour, PACED_QUEUE)],
        held=[(9, 1, clock_millis() + 1_000), (9, 2, clock_millis() + hour)],
    )
    # Then the set of its slots expires a day after the last, not before
    ttl = broker.client.pttl(broker.delays.slots_key(PACED_QUEUE, 9))
    assert SLOTS_KEPT_MS + hour - 60_000 < ttl <= SLOTS_KEPT_MS + hour


def test_slots_are_read_on_the_injected_clock_and_due_times_on_the_wall_clock(
    any_redis_broker, clock
):
    # Given the injected clock stopped at a time of its own, far from the wall clock's, and a
    # sender's rows 1 and 2 held on slots 1 s apart, each due (on the wall clock) when its slot
    # comes
    broker = any_redis_broker
    slot = clock_millis() + 1_000
    enqueue_later_on(
        [([1], 1_000, PACED_QUEUE), ([2], 2_000, PACED_QUEUE)],
        held=[(5, 1, slot), (5, 2, slot + 1_000)],
    )
    due = _due(broker, 2)
    # When the send on row 1's slot is 300 ms late (on the injected clock)
    move_next_rows_later([(5, slot, 300)])
    # Then row 2 is due 300 ms later on the wall clock (give or take the ms the test took)
    assert due + 300 <= _due(broker, 2) <= due + 300 + 1_000
