"""The scheduler's outbox relay job repairs everything stale in one fire, page after page."""

from __future__ import annotations

from datetime import timedelta

from producers.scheduler import jobs
from storage.models import OutboxMessage
from tests.lanes import delivery_messages
from worker.outbox import Outgoing, queue_messages


def test_one_relay_fire_enqueues_again_every_lost_row_however_many(
    db, clock, stub_broker, monkeypatch
):
    # Given pages of 10 rows, and 25 rows whose delivery messages Redis lost (a restart)
    monkeypatch.setattr(jobs, "RELAY_PAGE", 10)
    queue_messages([Outgoing(f"lost-{n}", "log", "+33612345678", "hello") for n in range(25)])
    stub_broker.flush_all()
    # When the relay fires once, past the relay's threshold
    clock.advance(timedelta(minutes=16))
    counts = jobs.outbox_relay(clock.now())
    # Then every lost row is enqueued again, once
    assert counts == {"requeued": 25, "unknown": 0, "resent": 0, "inbound_requeued": 0}
    messages = delivery_messages(stub_broker)
    queued = [outbox_id for message in messages for outbox_id in message.args[0]]
    assert sorted(queued) == sorted(row.id for row in OutboxMessage.select())
    # And the next fire finds nothing left to repair
    assert jobs.outbox_relay(clock.now())["requeued"] == 0
