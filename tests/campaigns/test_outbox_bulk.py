"""Queueing many outbox messages at once keeps queue_message's rules (invariant 1)."""

from __future__ import annotations

import pytest

from storage.db import database
from storage.errors import InvalidInput
from storage.models import OutboxMessage
from tests.lanes import delivery_messages
from worker.channels import Media
from worker.outbox import Outgoing, queue_messages


def deliveries(broker) -> int:
    """Outbox rows named by the delivery messages on the broker."""
    if "delivery" not in broker.queues:
        return 0
    return sum(len(m.args[0]) for m in delivery_messages(broker))


def test_each_key_is_claimed_once_and_only_new_claims_are_enqueued(db, clock, stub_broker):
    # Given two messages queued together
    first = [
        Outgoing("k-1", "log", " +33611111111 ", "one", Media("https://x/a.png", "image/png")),
        Outgoing("k-2", "log", "+33622222222", "two"),
    ]
    claimed = queue_messages(first, source="campaign")
    assert len(claimed) == 2
    assert deliveries(stub_broker) == 2
    row = OutboxMessage.get(OutboxMessage.idempotency_key == "k-1")
    assert (row.recipient, row.media_url, row.source, row.status) == (
        "+33611111111",
        "https://x/a.png",
        "campaign",
        "queued",
    )
    # When one of them comes again with a new one
    again = queue_messages(
        [Outgoing("k-2", "log", "+336", "changed"), Outgoing("k-3", "log", "+337", "3")]
    )
    # Then only the new key is claimed and enqueued; the old row is untouched
    assert [row.id for row in again] == [
        OutboxMessage.get(OutboxMessage.idempotency_key == "k-3").id
    ]
    assert deliveries(stub_broker) == 3
    assert OutboxMessage.get(OutboxMessage.idempotency_key == "k-2").body == "two"


def test_deliveries_wait_for_the_commit_and_vanish_with_a_rollback(db, clock, stub_broker):
    class Boom(Exception):
        pass

    with pytest.raises(Boom), database.atomic():
        queue_messages([Outgoing("k-1", "log", "+336", "hi")])
        assert deliveries(stub_broker) == 0
        raise Boom
    assert OutboxMessage.select().count() == 0
    assert deliveries(stub_broker) == 0


def test_one_bad_message_writes_nothing(db, clock, stub_broker):
    with pytest.raises(InvalidInput, match="body is empty"):
        queue_messages([Outgoing("k-1", "log", "+336", "hi"), Outgoing("k-2", "log", "+336", " ")])
    assert OutboxMessage.select().count() == 0
    assert deliveries(stub_broker) == 0
