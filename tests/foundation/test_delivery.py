"""Delivery claims a row once, records what happened, never resends blindly (invariants 1, 2)."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from storage.db import database
from storage.errors import NotFound
from storage.models import OutboxMessage
from tests.lanes import delivery_messages, join_deliveries
from worker import delivery
from worker.actors.delivery import (
    deliver_outbox_message,
    deliver_outbox_messages,
    outbox_delivery_exhausted,
)
from worker.channels import Outbound, PermanentSendError, TransientSendError
from worker.delivery import Outcome, deliver
from worker.logging import configure_logging
from worker.outbox import queue_message
from worker.outbox_relay import relay
from worker.outcomes import on_outcome


class RecordingChannel:
    """A channel that records sends; can be told to fail, or to block mid-send."""

    name = "log"
    deduplicates = False

    def __init__(self) -> None:
        self.sent: list[Outbound] = []
        self.error: Exception | None = None
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.lock = threading.Lock()

    def send(self, message: Outbound) -> str:
        self.entered.set()
        self.release.wait(10)
        if self.error is not None:
            raise self.error
        with self.lock:
            self.sent.append(message)
        return f"provider-{len(self.sent)}"


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> RecordingChannel:
    recording = RecordingChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: recording)
    return recording


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Every JSON log line written during the test (INFO and up)."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO", stream)
    yield stream
    root.handlers = saved_handlers
    root.setLevel(saved_level)


def log_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def status_of(outbox_id: int) -> OutboxMessage:
    return OutboxMessage.get_by_id(outbox_id)


def test_a_queued_row_is_sent_once_and_recorded(db, clock, channel):
    row = queue_message("k-1", "log", "+33612345678", "hello")
    assert deliver(row.id) is Outcome.SENT
    after = status_of(row.id)
    assert after.status == "sent"
    assert after.provider_message_id == "provider-1"
    assert after.attempts == 1
    assert after.finished_at == clock.now()
    assert [m.idempotency_key for m in channel.sent] == ["k-1"]


def test_the_same_delivery_processed_twice_sends_once(db, clock, channel):
    row = queue_message("k-twice", "log", "+33612345678", "hello")
    assert deliver(row.id) is Outcome.SENT
    # A redelivered message finds the row done and does nothing
    assert deliver(row.id) is Outcome.ALREADY_DONE
    assert len(channel.sent) == 1


def test_the_same_delivery_from_two_threads_at_once_sends_once(db, clock, channel):
    row = queue_message("k-concurrent", "log", "+33612345678", "hello")
    barrier = threading.Barrier(4)
    outcomes: list[Outcome] = []

    def run() -> None:
        with database.connection_context():
            barrier.wait()
            outcomes.append(deliver(row.id))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Exactly one thread won the claim; the others saw it claimed or done
    assert outcomes.count(Outcome.SENT) == 1
    assert len(channel.sent) == 1
    assert status_of(row.id).status == "sent"


def test_a_permanent_error_is_failed_with_its_reason_and_not_retried(db, clock, channel):
    channel.error = PermanentSendError("HTTP 400: bad chat id")
    row = queue_message("k-perm", "log", "+33612345678", "hello")
    assert deliver(row.id) is Outcome.FAILED
    after = status_of(row.id)
    assert after.status == "failed"
    assert after.last_error == "HTTP 400: bad chat id"


def test_a_transient_error_puts_the_row_back_for_a_retry_that_then_sends(db, clock, channel):
    channel.error = TransientSendError("HTTP 503")
    row = queue_message("k-transient", "log", "+33612345678", "hello")
    with pytest.raises(TransientSendError):
        deliver(row.id)
    assert status_of(row.id).status == "queued"
    assert status_of(row.id).last_error == "HTTP 503"
    # The retry goes through
    channel.error = None
    assert deliver(row.id) is Outcome.SENT
    assert status_of(row.id).attempts == 2


def test_an_unknown_id_is_a_clear_error(db, clock, channel):
    with pytest.raises(NotFound, match="outbox message 999 does not exist"):
        deliver(999)


def test_a_row_found_sending_while_another_worker_sends_is_left_alone(db, clock, channel):
    # Given a worker blocked in the middle of a send
    channel.release.clear()
    row = queue_message("k-inflight", "log", "+33612345678", "hello")
    first = threading.Thread(target=lambda: _deliver_in_thread(row.id))
    first.start()
    assert channel.entered.wait(5)
    # When a duplicate delivery arrives while it is still sending
    assert deliver(row.id) is Outcome.IN_FLIGHT
    channel.release.set()
    first.join()
    # Then the first send completes and nothing was sent twice
    assert status_of(row.id).status == "sent"
    assert len(channel.sent) == 1


def _deliver_in_thread(outbox_id: int) -> None:
    with database.connection_context():
        deliver(outbox_id)


def _crash_mid_send(outbox_id: int) -> None:
    """What a killed worker leaves behind: the row claimed, `sending`, with no outcome."""
    OutboxMessage.update(status="sending", claimed_at=OutboxMessage.created_at, attempts=1).where(
        OutboxMessage.id == outbox_id
    ).execute()


def test_a_send_that_died_midway_becomes_unknown_and_is_not_resent(db, clock, channel):
    row = queue_message("k-died", "log", "+33612345678", "hello")
    _crash_mid_send(row.id)
    # When the message is redelivered after the stale window
    clock.advance(timedelta(minutes=5))
    assert deliver(row.id) is Outcome.UNKNOWN
    after = status_of(row.id)
    assert after.status == "unknown"
    assert "died mid-send" in after.last_error
    # And later attempts leave it for an operator
    assert deliver(row.id) is Outcome.ALREADY_DONE
    assert channel.sent == []


def test_a_died_send_on_a_deduplicating_channel_is_sent_again(db, clock, channel):
    channel.deduplicates = True
    row = queue_message("k-dedup", "webhook", "+33612345678", "hello")
    _crash_mid_send(row.id)
    clock.advance(timedelta(minutes=5))
    assert deliver(row.id) is Outcome.SENT
    assert [m.idempotency_key for m in channel.sent] == ["k-dedup"]


def test_outcome_handlers_see_the_final_row_in_the_same_transaction(db, clock, channel):
    seen: list[tuple[str, str]] = []
    on_outcome("test-source")(lambda rows: seen.extend((r.idempotency_key, r.status) for r in rows))
    ok = queue_message("k-ok", "log", "+33612345678", "hello", source="test-source")
    deliver(ok.id)
    channel.error = PermanentSendError("refused")
    bad = queue_message("k-bad", "log", "+33612345678", "hello", source="test-source")
    deliver(bad.id)
    assert seen == [("k-ok", "sent"), ("k-bad", "failed")]


def test_retries_exhausted_marks_the_row_failed(db, clock, channel):
    row = queue_message("k-exhausted", "log", "+33612345678", "hello")
    OutboxMessage.update(last_error="HTTP 503").where(OutboxMessage.id == row.id).execute()
    assert delivery.mark_exhausted(row.id, "TransientSendError: HTTP 503")
    after = status_of(row.id)
    assert after.status == "failed"
    assert after.last_error == "retries exhausted: TransientSendError: HTTP 503"
    # A row already final is not overwritten
    assert not delivery.mark_exhausted(row.id, "again")


def test_exhausted_retries_record_the_send_error_not_a_traceback_line(
    db, clock, channel, stub_broker, stub_worker, monkeypatch, log_stream
):
    # Given a channel whose answer spans several lines, and a delivery allowed one retry
    for actor in (deliver_outbox_message, deliver_outbox_messages):
        monkeypatch.setitem(actor.options, "max_retries", 1)
        monkeypatch.setitem(actor.options, "min_backoff", 10)
        monkeypatch.setitem(actor.options, "max_backoff", 20)
    reason = 'webhook answered HTTP 503:\n{"error": "maintenance"}'
    channel.error = TransientSendError(reason, status_code=503)
    row = queue_message("k-exhausted-multiline", "log", "+33612345678", "hello")
    # When every attempt fails and the retries run out
    join_deliveries(stub_broker)
    # Then the row and the log line carry the whole send error, not the traceback's last line
    after = status_of(row.id)
    assert after.status == "failed"
    assert after.attempts == 2
    assert after.last_error == f"retries exhausted: {reason}"
    exhausted = [line for line in log_lines(log_stream) if line["event"] == "delivery.exhausted"]
    assert [line["error"] for line in exhausted] == [reason]
    assert len(stub_broker.dead_letters) == 1


def test_exhausted_without_a_recorded_error_falls_back_to_the_traceback(db, clock, channel):
    # Given a row that never recorded a send error (it failed before reaching the channel)
    row = queue_message("k-exhausted-no-error", "log", "+33612345678", "hello")
    message = {
        "args": [row.id],
        "options": {"traceback": "Traceback (most recent call last):\n  ...\nOSError: disk full\n"},
    }
    # When the exhausted hook runs
    outbox_delivery_exhausted.fn(message, {})
    # Then the traceback's last line is the reason
    assert status_of(row.id).last_error == "retries exhausted: OSError: disk full"


def test_relay_requeues_rows_left_queued_and_settles_rows_left_sending(
    db, clock, channel, stub_broker
):
    # Given one row whose enqueue was lost, one fresh row, and one send that died
    lost = queue_message("k-lost", "log", "+33612345678", "hello")
    stub_broker.flush_all()  # the broker lost every delivery message
    clock.advance(timedelta(minutes=20))
    fresh = queue_message("k-fresh", "log", "+33612345678", "hello")
    died = queue_message("k-died-relay", "log", "+33612345678", "hello")
    _crash_mid_send(died.id)
    stub_broker.flush_all()
    clock.advance(timedelta(minutes=5))
    # When the relay runs
    counts = relay(relay_after=timedelta(minutes=15), sending_stale=timedelta(minutes=2))
    # Then only the lost row is enqueued again, and the died one is unknown
    assert counts == {"requeued": 1, "unknown": 1, "resent": 0}
    queued = delivery_messages(stub_broker)
    assert len(queued) == 1
    assert status_of(died.id).status == "unknown"
    assert status_of(fresh.id).status == "queued"
    # And a second relay right after does not enqueue it again
    assert relay(relay_after=timedelta(minutes=15), sending_stale=timedelta(minutes=2)) == {
        "requeued": 0,
        "unknown": 0,
        "resent": 0,
    }
    assert status_of(lost.id).enqueued_at == clock.now()
