"""The outbox claims a key once, and enqueues a delivery only for a new claim (invariant 1)."""

from __future__ import annotations

import threading

import pytest
from dramatiq.brokers.stub import StubBroker

from storage.db import database
from storage.errors import InvalidInput
from storage.models import OutboxMessage
from worker.outbox import queue_message


def delivery_messages(broker: StubBroker) -> list[int]:
    queue = broker.queues["delivery"]
    return [m for m in queue.queue]  # encoded messages waiting


def test_queue_message_claims_the_key_and_enqueues_one_delivery(db, clock, stub_broker):
    # Given an empty outbox
    # When a message is queued
    row = queue_message("user-1:goodbye_sent:2026-03-02", "log", "+33612345678", "Bye")
    # Then the row is queued and exactly one delivery of its id is on the broker
    assert row.status == "queued"
    assert row.created_at == clock.now()
    assert len(delivery_messages(stub_broker)) == 1


def test_same_key_twice_changes_nothing_and_returns_the_existing_row(db, clock, stub_broker):
    first = queue_message("k-1", "log", "+33612345678", "first body")
    # When the same key is queued again, even with another body and channel
    second = queue_message("k-1", "email", "a@example.com", "second body")
    # Then it is the same row, unchanged, and still only one delivery was enqueued
    assert second.id == first.id
    assert second.body == "first body" and second.channel == "log"
    assert OutboxMessage.select().count() == 1
    assert len(delivery_messages(stub_broker)) == 1


def test_claim_rolled_back_with_the_callers_transaction_enqueues_nothing(db, clock, stub_broker):
    class Boom(Exception):
        pass

    # Given a caller whose transaction fails after queueing
    with pytest.raises(Boom), database.atomic():
        queue_message("k-rollback", "log", "+33612345678", "hello")
        raise Boom
    # Then neither the row nor the delivery exists
    assert OutboxMessage.select().count() == 0
    assert len(delivery_messages(stub_broker)) == 0


def test_delivery_is_enqueued_only_after_the_commit(db, clock, stub_broker):
    with database.atomic():
        queue_message("k-after-commit", "log", "+33612345678", "hello")
        # Inside the transaction nothing is on the broker yet
        assert len(delivery_messages(stub_broker)) == 0
    assert len(delivery_messages(stub_broker)) == 1


def test_same_key_from_many_threads_is_claimed_once(db, clock, stub_broker):
    # Given eight threads racing to queue the same key
    barrier = threading.Barrier(8)
    ids: list[int] = []
    errors: list[BaseException] = []

    def claim() -> None:
        try:
            with database.connection_context():
                barrier.wait()
                ids.append(queue_message("k-race", "log", "+33612345678", "hello").id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every thread got the same row, and one delivery was enqueued
    assert errors == []
    assert len(set(ids)) == 1
    assert OutboxMessage.select().count() == 1
    assert len(delivery_messages(stub_broker)) == 1


@pytest.mark.parametrize(
    ("key", "channel", "recipient", "body", "expected"),
    [
        ("", "log", "+336", "hi", "idempotency key"),
        ("k" * 256, "log", "+336", "hi", "idempotency key"),
        ("k", "sms", "+336", "hi", "unknown channel"),
        ("k", "log", "  ", "hi", "recipient is empty"),
        ("k", "log", "+336", " ", "body is empty"),
        ("k", "log", "+336", "b" * 65_537, "body is longer than 65536"),
        ("k", "email", "a" * 321, "hi", "recipient is longer than 320"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(
    db, clock, key, channel, recipient, body, expected
):
    with pytest.raises(InvalidInput, match=expected):
        queue_message(key, channel, recipient, body)
    assert OutboxMessage.select().count() == 0
