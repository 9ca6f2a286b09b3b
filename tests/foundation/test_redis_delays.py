"""Delayed messages wait in Redis, not in a worker's memory, and run once when due.

On fakeredis and on the real Redis (`any_redis_broker`), with Dramatiq's own worker.
"""

from __future__ import annotations

import threading
import time
import uuid

import dramatiq
from dramatiq.common import current_millis

from producers.status import queue_depths
from worker.redis_delays import ADD_AT_MOST


def _queue() -> str:
    # Actors and queues are carried from broker to broker between tests: each its own name.
    return f"later_{uuid.uuid4().hex[:8]}"


def _idle_actor(queue: str) -> dramatiq.Actor:
    """An actor on `queue` that does nothing."""

    @dramatiq.actor(actor_name=queue, queue_name=queue, max_retries=0)
    def later(n: int = 0) -> None:
        pass

    return later


def test_a_delayed_message_waits_in_redis_until_it_is_due(any_redis_broker):
    # Given an actor on its own queue
    broker = any_redis_broker
    queue = _queue()
    later = _idle_actor(queue)
    # When a message is sent with a delay of a minute
    later.send_with_options(args=(1,), delay=60_000)
    # Then it waits in the queue's sorted set, with its body beside it: not on the queue, and
    # not on Dramatiq's delay queue (where a worker would fetch it and hold it in memory)
    client, key = broker.client, f"{broker.namespace}:{queue}"
    assert broker.delays.count(queue) == 1
    assert client.hlen(f"{key}.delayed.msgs") == 1
    assert client.llen(key) == 0 and client.llen(f"{key}.DQ") == 0
    # And `outreach status` counts it as delayed
    [depth] = [d for d in queue_depths(broker) if d["queue"] == queue]
    assert depth == {"queue": queue, "ready": 0, "in_flight": 0, "delayed": 1, "dead": 0}
    # When its time has not come, nothing moves; when it has, it is on its queue, ready
    assert broker.delays.move_due([queue], current_millis()) == 0
    assert broker.delays.move_due([queue], current_millis() + 61_000) == 1
    assert client.llen(key) == 1 and broker.delays.count(queue) == 0
    assert client.hlen(f"{key}.delayed.msgs") == 0 and client.hlen(f"{key}.msgs") == 1


def test_a_worker_runs_a_delayed_message_once_after_its_delay(any_redis_broker):
    # Given an actor that records when it ran, and a real worker
    broker = any_redis_broker
    queue = _queue()
    runs: list[float] = []
    ran = threading.Event()

    @dramatiq.actor(actor_name=queue, queue_name=queue, max_retries=0)
    def later() -> None:
        runs.append(time.monotonic())
        ran.set()

    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        # When a message is sent with a delay of 0.7 s
        sent = time.monotonic()
        later.send_with_options(delay=700)
        # Then it runs once, not before its delay
        assert ran.wait(15), "the delayed message never ran"
        time.sleep(0.5)
    finally:
        worker.stop()
    assert len(runs) == 1
    assert runs[0] - sent >= 0.7
    # And nothing of it is left in Redis
    assert broker.delays.count(queue) == 0
    assert broker.client.hlen(f"{broker.namespace}:{queue}.msgs") == 0


def test_a_flushed_queue_drops_its_delayed_messages(any_redis_broker):
    # Given a message delayed a minute, when its queue is flushed, then it is gone too
    broker = any_redis_broker
    queue = _queue()
    later = _idle_actor(queue)
    later.send_with_options(delay=60_000)
    broker.flush(queue)
    assert broker.delays.count(queue) == 0
    assert broker.client.hlen(f"{broker.namespace}:{queue}.delayed.msgs") == 0


def moved_at_once(broker, queue: str, due_ms: int, consumers: int = 8) -> list[int]:
    """How many each of `consumers` moved, all moving what is due on `queue` at once."""
    moved: list[int] = []
    threads = [
        threading.Thread(target=lambda: moved.append(broker.delays.move_due([queue], due_ms)))
        for _ in range(consumers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return moved


def test_due_messages_move_once_however_many_consumers_ask(any_redis_broker):
    # Given 200 messages delayed a moment on one queue
    broker = any_redis_broker
    queue = _queue()
    later = _idle_actor(queue)
    for n in range(200):
        later.send_with_options(args=(n,), delay=1)
    # When eight consumers move what is due at the same moment
    moved = moved_at_once(broker, queue, current_millis() + 1_000)
    # Then each message was moved onto the queue once
    assert sum(moved) == 200
    assert broker.client.llen(f"{broker.namespace}:{queue}") == 200
    assert len(set(broker.client.lrange(f"{broker.namespace}:{queue}", 0, -1))) == 200


def _enqueued_later(broker, monkeypatch, queue: str, delays: list[int]):
    """Messages of an idle actor enqueued with these delays, and the commands the broker's
    client sent on their own (not in a pipeline) while it did so."""
    later = _idle_actor(queue)
    # (the script already loaded in Redis, as it is after a process's first delayed message)
    broker.enqueue_later([(later.message(-1), 60_000)])
    broker.client.delete(*broker.delays.keys(queue))
    single: list[object] = []
    real = broker.client.execute_command

    def counted(*args, **kwargs):
        single.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(broker.client, "execute_command", counted)
    sent = broker.enqueue_later([(later.message(n), d) for n, d in enumerate(delays)])
    monkeypatch.undo()
    return sent, single


def test_many_delayed_messages_are_written_in_one_round_trip(any_redis_broker, monkeypatch):
    # When three messages with three delays are enqueued together
    broker = any_redis_broker
    queue = _queue()
    before = current_millis()
    sent, single = _enqueued_later(broker, monkeypatch, queue, [10_000, 20_000, 30_000])
    # Then one script call wrote them all, and each waits for its own time
    assert single == ["EVALSHA"]
    assert len({m.options["redis_message_id"] for m in sent}) == 3
    key = f"{broker.namespace}:{queue}.delayed"
    scores = [score for _, score in broker.client.zrange(key, 0, -1, withscores=True)]
    assert len(scores) == 3
    assert [round((s - before) / 10_000) for s in scores] == [1, 2, 3]


def test_more_delayed_messages_than_one_call_takes_go_in_one_pipeline(
    any_redis_broker, monkeypatch
):
    # When more delayed messages than one script call adds are enqueued together
    broker = any_redis_broker
    queue = _queue()
    count = ADD_AT_MOST * 2 + 1
    sent, single = _enqueued_later(broker, monkeypatch, queue, [60_000] * count)
    # Then no command went on its own (one pipeline), and every one of them waits, once
    assert single == []
    assert broker.delays.count(queue) == count
    bodies = broker.client.hkeys(f"{broker.namespace}:{queue}.delayed.msgs")
    assert {b.decode() for b in bodies} == {m.options["redis_message_id"] for m in sent}


def test_a_retry_waits_its_backoff_in_redis_and_runs_again(any_redis_broker, monkeypatch):
    # Given an actor that fails the first time, with a short backoff, and a real worker
    broker = any_redis_broker
    queue = _queue()
    attempts: list[float] = []
    done = threading.Event()

    @dramatiq.actor(
        actor_name=queue, queue_name=queue, max_retries=3, min_backoff=300, max_backoff=300
    )
    def flaky() -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise RuntimeError("the first attempt fails")
        done.set()

    # (the queues of what is added to the sorted sets: a poll of their size can miss a 150 ms
    # wait on a busy machine)
    added: list[str] = []
    add_many = broker.delays.add_many

    def adding(delayed):
        add_many(delayed)
        added.extend(name for name, *_ in delayed)

    monkeypatch.setattr(broker.delays, "add_many", adding)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        # When it is sent
        flaky.send()
        # Then its retry runs once more after its backoff
        assert done.wait(15), "the retry never ran"
        time.sleep(0.3)
    finally:
        worker.stop()
    # And it waited for it in the queue's sorted set
    assert added == [queue]
    assert len(attempts) == 2
    assert attempts[1] - attempts[0] >= 0.15  # the backoff is jittered down to half
    assert broker.delays.count(queue) == 0
    assert broker.client.llen(f"{broker.namespace}:{queue}.DQ") == 0


def test_an_idle_consumer_fetches_at_once_what_its_process_moves_onto_its_queue(
    any_redis_broker,
):
    # Given a consumer of an actor's queue that found it empty so often that its next poll is
    # up to a minute away, and a message delayed on that queue
    broker = any_redis_broker
    queue = _queue()
    later = _idle_actor(queue)
    consumer = broker.consume(queue, prefetch=1, timeout=60_000)
    consumer.misses = 32
    later.send_with_options(args=(7,), delay=60_000)

    # When, while the consumer waits, its process moves the message onto the queue
    def move_soon() -> None:
        time.sleep(0.2)
        broker.delays.move_due([queue], current_millis() + 61_000)

    mover = threading.Thread(target=move_soon)
    mover.start()
    started = time.monotonic()
    woken = next(consumer)
    message = next(consumer)
    waited = time.monotonic() - started
    mover.join()
    # Then its wait was cut short and it fetched the message, not a minute later
    assert woken is None and message is not None
    assert list(message.args) == [7]
    assert waited < 10, waited
    assert consumer.misses == 0
    consumer.ack(message)
    consumer.close()
