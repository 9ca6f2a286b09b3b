"""A delivery message names a group of outbox rows; they go out in windows (invariants 1-3).

Each scenario runs on SQLite and on PostgreSQL (the `db` fixture).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from dramatiq import Message

from storage.db import database
from storage.errors import InvalidInput, NotFound
from storage.models import OutboxMessage
from tests.lanes import delivery_messages
from worker import delivery, outbox_sql
from worker.actors.delivery import (
    DELIVERY_MIN_BACKOFF_MS,
    deliver_outbox_messages,
    outbox_deliveries_exhausted,
)
from worker.channels import Outbound, PermanentSendError, TransientSendError
from worker.delivery import Outcome, deliver_many, send_here
from worker.delivery_queue import DELIVERY_GROUP
from worker.outbox import Outgoing, claim_here, queue_messages
from worker.outbox_relay import relay
from worker.outcomes import on_outcome


class ScriptedChannel:
    """Records sends; answers each recipient as scripted (an exception to raise, or success)."""

    name = "log"

    def __init__(self, deduplicates: bool = False) -> None:
        self.deduplicates = deduplicates
        self.sent: list[Outbound] = []
        self.script: dict[str, BaseException] = {}
        self.lock = threading.Lock()

    def send(self, message: Outbound) -> str:
        error = self.script.get(message.recipient)
        if error is not None:
            raise error
        with self.lock:
            self.sent.append(message)
        return f"provider-{message.idempotency_key}"

    def keys(self) -> list[str]:
        return sorted(m.idempotency_key for m in self.sent)


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> ScriptedChannel:
    scripted = ScriptedChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: scripted)
    return scripted


def queue(count: int, prefix: str = "g", source: str = "manual") -> list[int]:
    rows = queue_messages(
        [Outgoing(f"{prefix}-{n}", "log", f"+3361000{n:04d}", "hello") for n in range(count)],
        source=source,
    )
    return [row.id for row in rows]


def statuses(ids: list[int]) -> list[str]:
    return [OutboxMessage.get_by_id(i).status for i in ids]


def test_rows_queued_together_are_enqueued_as_groups(db, clock, stub_broker):
    # When more rows than a group holds are queued together
    ids = queue(DELIVERY_GROUP + 3)
    # Then they are on the broker as two delivery messages, naming each row once
    groups = [m.args[0] for m in delivery_messages(stub_broker)]
    assert [len(g) for g in groups] == [DELIVERY_GROUP, 3]
    assert sorted(i for g in groups for i in g) == sorted(ids)


def test_a_group_is_sent_once_each_with_its_own_outcome(db, clock, channel):
    # Given rows spanning several windows
    ids = queue(delivery.DELIVERY_WINDOW * 2 + 5)
    # When the group is delivered
    outcomes = deliver_many(ids)
    # Then each row went out once and is recorded sent with its own provider id
    assert set(outcomes.values()) == {Outcome.SENT}
    assert channel.keys() == sorted(f"g-{n}" for n in range(len(ids)))
    rows = [OutboxMessage.get_by_id(i) for i in ids]
    assert {r.status for r in rows} == {"sent"}
    assert all(r.provider_message_id == f"provider-{r.idempotency_key}" for r in rows)
    assert {r.attempts for r in rows} == {1}


def test_one_transient_failure_does_not_stop_the_group_and_only_it_is_retried(db, clock, channel):
    # Given a group in which one receiver is briefly unavailable and one refuses for good
    ids = queue(6)
    channel.script["+33610000002"] = TransientSendError("HTTP 503")
    channel.script["+33610000004"] = PermanentSendError("HTTP 400: bad number")
    # When the group is delivered, the transient failure is raised after the others were tried
    with pytest.raises(TransientSendError, match="HTTP 503"):
        deliver_many(ids)
    assert statuses(ids) == ["sent", "sent", "queued", "sent", "failed", "sent"]
    assert OutboxMessage.get_by_id(ids[2]).last_error == "HTTP 503"
    # And the retry of the same message sends only the row that waits
    del channel.script["+33610000002"]
    outcomes = deliver_many(ids)
    assert outcomes[ids[2]] is Outcome.SENT
    assert {outcomes[i] for i in ids if i != ids[2]} == {Outcome.ALREADY_DONE}
    assert channel.keys() == ["g-0", "g-1", "g-2", "g-3", "g-5"]


def test_an_unknown_id_in_a_group_is_raised_after_the_others_are_sent(db, clock, channel):
    ids = queue(2)
    with pytest.raises(NotFound, match="outbox message 999999 does not exist"):
        deliver_many([ids[0], 999999, ids[1]])
    assert statuses(ids) == ["sent", "sent"]


def test_a_channel_fault_mid_window_keeps_the_window_s_other_outcomes(db, clock, channel):
    # Given a channel that breaks (not a send error) on the second row of a window
    ids = queue(3)
    channel.script["+33610000001"] = RuntimeError("driver bug")
    # When the group is delivered
    outcomes = deliver_many(ids)
    # Then the rows around it are recorded sent, and the broken one is unknown, for review:
    # it may have gone out, and the log channel does not drop a second send
    assert [outcomes[i] for i in ids] == [Outcome.SENT, Outcome.UNKNOWN, Outcome.SENT]
    broken = OutboxMessage.get_by_id(ids[1])
    assert broken.status == "unknown"
    assert broken.last_error == "the send raised RuntimeError: driver bug"


def test_a_slow_window_gives_its_unsent_rows_back_and_they_go_in_the_next(
    db, clock, channel, monkeypatch
):
    # Given windows that take no new send once any time has passed
    monkeypatch.setattr(delivery, "WINDOW_SECONDS", -1.0)
    ids = queue(4)
    # When the group is delivered
    outcomes = deliver_many(ids)
    # Then every row was sent once, one per window. The first window (4 claimed) gave 3 back;
    # the next claimed only what the first had time to send (1), sent it all, and so doubled
    # (2), gave 1 back, and the last claimed 1: each give-back is one more claim of the row
    assert set(outcomes.values()) == {Outcome.SENT}
    assert channel.keys() == ["g-0", "g-1", "g-2", "g-3"]
    assert [OutboxMessage.get_by_id(i).attempts for i in ids] == [1, 2, 2, 3]


def test_a_group_out_of_time_hands_the_rest_to_a_new_message(
    db, clock, channel, monkeypatch, stub_broker
):
    # Given a group that has used up its time after its first window
    monkeypatch.setattr(delivery, "GROUP_SECONDS", -1.0)
    monkeypatch.setattr(delivery, "DELIVERY_WINDOW", 2)
    ids = queue(5)
    stub_broker.flush_all()
    # When it is delivered
    outcomes = deliver_many(ids)
    # Then the first window went out, and the rest is on the broker as a new message
    assert sorted(outcomes) == ids[:2]
    assert statuses(ids) == ["sent", "sent", "queued", "queued", "queued"]
    [message] = delivery_messages(stub_broker)
    assert message.args[0] == ids[2:]


def test_the_same_group_delivered_twice_at_once_sends_each_row_once(db, clock, channel):
    ids = queue(delivery.DELIVERY_WINDOW + 7)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def run() -> None:
        with database.connection_context():
            barrier.wait()
            try:
                deliver_many(ids)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert channel.keys() == sorted(f"g-{n}" for n in range(len(ids)))
    assert set(statuses(ids)) == {"sent"}


def test_a_worker_killed_mid_window_leaves_its_claims_for_review_never_resent(db, clock, channel):
    # Given a window claimed and partly sent when its worker died (nothing recorded)
    ids = queue(3)
    claimed = delivery.outbox_sql.claim_queued(ids, clock.now(), ["log"])
    assert sorted(claimed) == ids
    # When the relay runs after the sending window has gone stale
    clock.advance(timedelta(minutes=30))
    counts = relay()
    # Then the claims are `unknown`, listed for an operator, and nothing was sent again
    assert counts["unknown"] == 3
    assert statuses(ids) == ["unknown"] * 3
    assert channel.sent == []


def test_a_killed_window_on_a_deduplicating_channel_is_sent_again(db, clock, channel, stub_broker):
    channel.deduplicates = True
    ids = queue(3)
    delivery.outbox_sql.claim_queued(ids, clock.now(), ["log"])
    stub_broker.flush_all()
    clock.advance(timedelta(minutes=30))
    assert relay()["resent"] == 3
    groups = [m.args[0] for m in delivery_messages(stub_broker)]
    deliver_many([i for g in groups for i in g])
    assert channel.keys() == ["g-0", "g-1", "g-2"]


def test_outcome_handlers_get_a_window_s_rows_together_in_its_transaction(db, clock, channel):
    seen: list[list[tuple[str, str]]] = []
    on_outcome("test-window")(
        lambda rows: seen.append([(r.idempotency_key, r.status) for r in rows])
    )
    ids = queue(3, prefix="w", source="test-window")
    channel.script["+33610000001"] = PermanentSendError("refused")
    deliver_many(ids)
    assert [sorted(batch) for batch in seen] == [
        [("w-0", "sent"), ("w-1", "failed"), ("w-2", "sent")]
    ]


def test_exhausted_retries_fail_the_rows_still_waiting_and_keep_the_rest(db, clock, channel):
    # Given a group in which one row kept failing
    ids = queue(3)
    channel.script["+33610000001"] = TransientSendError("HTTP 503")
    with pytest.raises(TransientSendError):
        deliver_many(ids)
    # When its retries run out
    message = deliver_outbox_messages.message(ids).asdict()
    outbox_deliveries_exhausted(message, {})
    # Then only the waiting row is failed, with the send's own error
    assert statuses(ids) == ["sent", "failed", "sent"]
    assert OutboxMessage.get_by_id(ids[1]).last_error == "retries exhausted: HTTP 503"


# --- a row delivered by the process that claimed it ------------------------------------------


def claimed_here(key: str) -> tuple[int, tuple[object, ...]]:
    """A claim its caller wrote in a statement of its own, already claimed for sending by it,
    nothing enqueued (as a goodbye is). Returns its id and values."""
    values = claim_here(key, "log", " +33612345678 ", "hello", source="manual")
    row = dict(zip(outbox_sql.CLAIMED_HERE, values, strict=True))
    return int(OutboxMessage.insert(row).execute()), values


def test_claims_here_are_checked_as_queue_message_checks_them(db, clock):
    with pytest.raises(InvalidInput, match="body is empty"):
        claim_here("k", "log", "+336", " ", source="manual")
    with pytest.raises(InvalidInput, match="unknown channel"):
        claim_here("k", "sms", "+336", "hi", source="manual")
    outbox_id, _ = claimed_here("here-0")
    row = OutboxMessage.get_by_id(outbox_id)
    assert (row.status, row.attempts, row.recipient, row.claimed_at) == (
        "sending",
        1,
        "+33612345678",
        clock.now(),
    )


def test_a_row_sent_here_needs_no_delivery_message_and_no_claim(db, clock, channel, stub_broker):
    # Given a row written already claimed for sending, nothing enqueued
    outbox_id, values = claimed_here("here-1")
    # When this process sends it
    send_here(outbox_id, values)
    # Then it was sent once, recorded, and nothing went on the broker
    assert channel.keys() == ["here-1"]
    row = OutboxMessage.get_by_id(outbox_id)
    assert (row.status, row.attempts, row.provider_message_id) == ("sent", 1, "provider-here-1")
    assert not delivery_messages(stub_broker)


def test_a_row_sent_here_that_another_worker_settled_meanwhile_is_not_overwritten(
    db, clock, channel
):
    # Given a row claimed here that the relay already settled (it looked stale)
    outbox_id, values = claimed_here("here-settled")
    OutboxMessage.update(status="unknown").where(OutboxMessage.id == outbox_id).execute()
    # When the late send's outcome is recorded, it does not overwrite the relay's
    send_here(outbox_id, values)
    assert OutboxMessage.get_by_id(outbox_id).status == "unknown"


def test_a_worker_killed_between_commit_and_send_leaves_the_row_for_review(db, clock, channel):
    # Given a row written claimed for sending whose worker died before sending it
    outbox_id, _ = claimed_here("here-killed")
    # When the relay runs after the sending window has gone stale
    clock.advance(timedelta(minutes=30))
    assert relay()["unknown"] == 1
    # Then it is `unknown` for an operator, as any send that died mid-way, and never sent
    assert OutboxMessage.get_by_id(outbox_id).status == "unknown"
    assert channel.sent == []


def test_a_row_that_cannot_go_now_is_handed_to_the_delivery_actor_after_its_backoff(
    db, clock, channel, stub_broker
):
    # Given a receiver briefly unavailable
    outbox_id, values = claimed_here("here-2")
    row = OutboxMessage.get_by_id(outbox_id)
    channel.script["+33612345678"] = TransientSendError("HTTP 503")
    # When this process tries to send it: no error reaches the caller
    send_here(outbox_id, values)
    # Then the row waits, queued, and one delivery message for it waits out the first backoff
    assert OutboxMessage.get_by_id(row.id).status == "queued"
    [message] = [Message.decode(m) for m in stub_broker.queues["delivery.DQ"].queue]
    assert message.args[0] == [row.id]
    assert message.options["eta"] >= message.message_timestamp + DELIVERY_MIN_BACKOFF_MS
    # And the delivery actor sends it once the receiver is back
    del channel.script["+33612345678"]
    deliver_many(message.args[0])
    assert channel.keys() == ["here-2"]


def test_a_row_whose_hand_over_fails_is_left_to_the_relay(
    db, clock, channel, stub_broker, monkeypatch
):
    # Given a receiver that fails and a broker that cannot take the hand-over
    outbox_id, values = claimed_here("here-3")
    row = OutboxMessage.get_by_id(outbox_id)
    channel.script["+33612345678"] = TransientSendError("HTTP 503")

    def broker_down(*args, **kwargs):
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(deliver_outbox_messages, "send_with_options", broker_down)
    # When this process tries to send it, nothing is raised to the caller
    send_here(outbox_id, values)
    # Then the row stays queued, and the relay enqueues it once its threshold has passed
    assert OutboxMessage.get_by_id(row.id).status == "queued"
    monkeypatch.undo()
    clock.advance(timedelta(minutes=20))
    assert relay()["requeued"] == 1


def test_a_row_sent_here_on_a_channel_without_its_settings_fails_with_the_reason(
    db, clock, stub_broker, env
):
    # Given no WhatsApp API configured, and a row written claimed for sending on WhatsApp
    env.delenv("WAHA_URL", raising=False)
    values = claim_here("here-waha", "whatsapp", "+33612345678", "hello", source="manual")
    row = dict(zip(outbox_sql.CLAIMED_HERE, values, strict=True))
    outbox_id = int(OutboxMessage.insert(row).execute())
    # When this process tries to send it
    send_here(outbox_id, values)
    # Then it is failed at once with the setting that is missing, and nothing is handed over
    failed = OutboxMessage.get_by_id(outbox_id)
    assert failed.status == "failed"
    assert "WAHA_URL" in failed.last_error
    assert "delivery.DQ" not in stub_broker.queues or not stub_broker.queues["delivery.DQ"].qsize()


def test_one_row_s_fault_in_recording_costs_that_row_only(db, clock, channel):
    # Given a source whose outcome handler breaks on one row of a window
    def handler(rows):
        if any(r.idempotency_key == "f-1" for r in rows):
            raise RuntimeError("handler bug")

    on_outcome("test-fault")(handler)
    ids = queue(3, prefix="f", source="test-fault")
    # When the window is delivered, the error is raised once every row has been recorded
    with pytest.raises(RuntimeError, match="handler bug"):
        deliver_many(ids)
    # Then the other rows' sends are recorded, and the broken one is left `sending`, for the relay
    assert statuses(ids) == ["sent", "sending", "sent"]
    assert channel.keys() == ["f-0", "f-1", "f-2"]


def test_exhausted_retries_leave_rows_that_another_message_holds(db, clock, channel, stub_broker):
    # Given a group: one row kept failing, one was handed over and never tried, and one is
    # being sent by another worker right now
    ids = queue(3)
    OutboxMessage.update(last_error="HTTP 503", attempts=8).where(
        OutboxMessage.id == ids[0]
    ).execute()
    OutboxMessage.update(status="sending", attempts=1, claimed_at=clock.now()).where(
        OutboxMessage.id == ids[2]
    ).execute()
    # When the group's retries run out
    outbox_deliveries_exhausted(deliver_outbox_messages.message(ids).asdict(), {})
    # Then only the failing row is failed; the others are left to the messages that hold them
    assert statuses(ids) == ["failed", "queued", "sending"]
