"""Consent wins over the goodbye (invariant 7): its own claim statement checks the suppression
list, the delivery checks it again, and the user is still moved. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from producers.embedded import drain
from producers.engagement import run_daily
from storage.models import Account, EngagementTransition, OutboxMessage
from storage.models.engagement import GOODBYE_SENT
from tests.engagement.conftest import state_of
from worker import delivery
from worker.actors.engagement import process_engagement_user
from worker.channels import TransientSendError
from worker.consent.suppression import suppress
from worker.delivery import Outcome, deliver_many
from worker.engagement.process import process_user

INACTIVE = timedelta(days=14)


class Recording:
    """A channel that records what it sends; its first `failures` sends fail transiently."""

    name = "log"
    deduplicates = False

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[str] = []
        self.failures = failures

    def send(self, message: OutboxMessage) -> str:
        if self.failures:
            self.failures -= 1
            raise TransientSendError("HTTP 503")
        self.sent.append(message.recipient)
        return "provider-id"


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> Recording:
    recording = Recording()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: recording)
    return recording


def deliveries(broker) -> int:
    return broker.queues["delivery"].qsize() if "delivery" in broker.queues else 0


def goodbyes() -> list[OutboxMessage]:
    return list(OutboxMessage.select().where(OutboxMessage.source == "engagement"))


def test_a_goodbye_to_a_suppressed_address_is_written_suppressed_and_the_user_still_moves(
    make_user, account, clock, channel, stub_broker
):
    # Given an inactive user whose WhatsApp number opted out in their account, written otherwise
    user_id = make_user(inactive_for=INACTIVE)
    suppress(account.id, "whatsapp", "+33 6 12 34 56 78", "opt_out", "test")
    # When the daily run works the user's message
    run_id = run_daily(clock.now())["run_id"]
    stub_broker.flush_all()
    outcome = process_user(run_id, user_id, "inactivity_14d")
    # Then the user is moved as today, and the goodbye is final: suppressed, never sent
    assert outcome == "succeeded"
    assert state_of(user_id).state == GOODBYE_SENT
    [row] = goodbyes()
    assert (row.status, row.account_id, row.address) == ("suppressed", account.id, "33612345678")
    assert channel.sent == []
    # And nothing was enqueued for it
    assert deliveries(stub_broker) == 0


def test_a_goodbye_is_claimed_for_its_users_account_and_address(make_user, account, clock, channel):
    # Given an inactive user whose number is suppressed in another account only
    other = Account.create(name="Other", created_at=clock.now())
    suppress(other.id, "whatsapp", "+33612345678", "opt_out", "test")
    make_user(inactive_for=INACTIVE)
    # When the run works the user
    run_daily(clock.now())
    drain()
    # Then the goodbye went out, on a row that names the user's account and address
    [row] = goodbyes()
    assert (row.status, row.account_id, row.address) == ("sent", account.id, "33612345678")
    assert channel.sent == ["33612345678@c.us"]


def test_a_goodbye_whose_address_is_suppressed_after_its_claim_is_not_sent(
    make_user, account, clock, channel, stub_broker
):
    # Given a goodbye claimed and committed whose first send failed (it waits for a retry)
    channel.failures = 1
    user_id = make_user(inactive_for=INACTIVE)
    run_id = run_daily(clock.now())["run_id"]
    stub_broker.flush_all()
    assert process_user(run_id, user_id, "inactivity_14d") == "succeeded"
    [row] = goodbyes()
    assert row.status == "queued"
    # When the user writes STOP before the retry, then the retry is delivered
    suppress(account.id, "whatsapp", "33612345678@c.us", "opt_out", "test")
    outcomes = deliver_many([row.id])
    # Then it is not sent: it ends suppressed, and the user stays moved
    assert outcomes == {row.id: Outcome.SUPPRESSED}
    assert channel.sent == []
    assert OutboxMessage.get_by_id(row.id).status == "suppressed"
    assert state_of(user_id).state == GOODBYE_SENT


def test_a_redelivered_message_for_a_suppressed_user_sends_nothing_twice(
    make_user, account, clock, channel, stub_broker
):
    # Given an inactive user whose number is suppressed
    user_id = make_user(inactive_for=INACTIVE)
    suppress(account.id, "whatsapp", "33612345678", "opt_out", "test")
    run_id = run_daily(clock.now())["run_id"]
    # When the broker delivers the user's message a second time, and both are worked
    process_engagement_user.send(run_id, user_id, "inactivity_14d")
    drain()
    # Then one transition, one suppressed goodbye, nothing sent, nothing enqueued
    assert state_of(user_id).state == GOODBYE_SENT
    assert EngagementTransition.select().count() == 1
    assert [row.status for row in goodbyes()] == ["suppressed"]
    assert channel.sent == []
    assert deliveries(stub_broker) == 0
