"""A send later than its slot allowed for moves its sender's next waiting row later by as much
(worker.pacing.next_rows_later): the row then comes due when its sender is quiet again, rather
than find it busy and go round the broker once more.

On the project's Redis broker (fakeredis: what is checked is the time a row's delayed id waits
for), with Redis's clock following the injected one, so that due times read on it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import clock as clock_module
from storage.models import OutboxMessage
from storage.models.outbox import SENT
from tests.pacing.helpers import gaps, queue_whatsapp
from worker import delivery, delivery_queue, pacing, senders
from worker.delivery import Outcome
from worker.delivery_queue import PACED_QUEUE

SENDER = "whatsapp:default"
# A sender paced at exactly 2 s: its slots are 2 s, the guard and the slack apart.
SPACING = 2.0
SLACK = senders.Pacing(SPACING, SPACING, None).slack


@pytest.fixture
def redis_on_the_fake_clock(monkeypatch: pytest.MonkeyPatch, fakeredis_broker, clock):
    monkeypatch.setattr(delivery_queue, "current_millis", delivery_queue.clock_millis)
    return fakeredis_broker


def due_time(broker, outbox_id: int) -> datetime | None:
    """When the row's delayed delivery is due, None if it waits for none."""
    ms = broker.client.zscore(broker.delays.keys(PACED_QUEUE)[2], str(outbox_id))
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def slot_of(outbox_id: int) -> datetime:
    return clock_module.as_utc(OutboxMessage.get_by_id(outbox_id).not_before)


def three_rows_one_sent() -> list[int]:
    """Three rows of the sender: the first sent now, the others waiting for their slots."""
    senders.configure_sender(SENDER, min_spacing=SPACING, max_spacing=SPACING)
    ids = queue_whatsapp(3)
    outcomes = delivery.deliver_many(ids)
    assert [outcomes[i] for i in ids] == [Outcome.SENT, Outcome.DEFERRED, Outcome.DEFERRED]
    return ids


def test_a_send_late_for_its_slot_moves_its_senders_next_row_by_its_lateness(
    db, clock, env, whatsapp, redis_on_the_fake_clock
):
    # Given a sender's second and third rows waiting for their slots, each due on its slot
    broker = redis_on_the_fake_clock
    _, second, third = three_rows_one_sent()
    assert due_time(broker, third) == slot_of(third)
    # When the second's delivery fires 400 ms after its slot, and it goes
    clock.set(slot_of(second) + timedelta(milliseconds=400))
    assert delivery.deliver_many([second]) == {second: Outcome.SENT}
    # Then the third is due as much later than its slot, less the slack its slot allowed for
    # and the time a delayed delivery takes to reach its thread
    late = timedelta(milliseconds=400) - SLACK - pacing.NEXT_ROW_AHEAD
    assert due_time(broker, third) == slot_of(third) + late
    # And once it reaches its thread, its sender is quiet: it goes, not put back again, and
    # no gap at the far end is shorter than the spacing
    clock.set(slot_of(third) + late + pacing.NEXT_ROW_AHEAD)
    assert delivery.deliver_many([third]) == {third: Outcome.SENT}
    assert [m.idempotency_key for _, m in whatsapp.sent] == ["m-0", "m-1", "m-2"]
    assert min(gaps(whatsapp.times)) >= SPACING


@pytest.mark.parametrize("after_slot_ms", [0, 100, 130])
def test_a_send_on_time_or_late_within_its_slack_moves_nothing(
    db, clock, env, whatsapp, redis_on_the_fake_clock, after_slot_ms
):
    # Given a sender's second and third rows waiting for their slots
    broker = redis_on_the_fake_clock
    _, second, third = three_rows_one_sent()
    # When the second goes on its slot, or late by no more than the slack and the time a
    # delayed delivery takes to reach its thread
    clock.set(slot_of(second) + timedelta(milliseconds=after_slot_ms))
    assert delivery.deliver_many([second]) == {second: Outcome.SENT}
    # Then the third still waits for its own slot
    assert due_time(broker, third) == slot_of(third)


def test_a_move_that_fails_loses_nothing_but_the_move(
    db, clock, env, whatsapp, redis_on_the_fake_clock, monkeypatch
):
    # Given a sender's second and third rows waiting for their slots, and Redis refusing the
    # move of a sender's next row
    broker = redis_on_the_fake_clock
    _, second, third = three_rows_one_sent()

    def refused(moves):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(pacing, "move_next_rows_later", refused)
    # When the second goes 400 ms late
    clock.set(slot_of(second) + timedelta(milliseconds=400))
    outcomes = delivery.deliver_many([second])
    # Then it is sent and recorded once, and the third waits for its own slot, to be put back
    # until its sender is quiet as before
    assert outcomes == {second: Outcome.SENT}
    assert OutboxMessage.get_by_id(second).status == SENT
    assert len(whatsapp.sent) == 2
    assert due_time(broker, third) == slot_of(third)
