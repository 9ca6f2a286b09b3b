"""Consent wins: every claim path checks the suppression list in its own statement, and the
delivery checks it again when it claims its window (design invariant 7)."""

from __future__ import annotations

import pytest

from storage.models import Account, OutboxMessage
from storage.models.consent import normalise_address
from tests.lanes import delivery_messages
from worker.consent.suppression import is_suppressed, lift, suppress
from worker.delivery import Outcome, deliver_many
from worker.outbox import Outgoing, queue_message, queue_messages


def deliveries(broker) -> int:
    return len(delivery_messages(broker))


@pytest.fixture
def account(db, clock) -> Account:
    return Account.create(name="Garage", created_at=clock.now())


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("+33 6 12 34 56 78", "33612345678"),
        ("0033612345678", "33612345678"),
        ("33612345678@c.us", "33612345678"),
        ("33612345678@s.whatsapp.net", "33612345678"),
        (" Lea@Example.COM ", "lea@example.com"),
        ("0612345678", "0612345678"),
        ("120363@g.us", "120363@g.us"),
    ],
)
def test_a_phone_a_whatsapp_id_and_an_email_have_one_normal_form(raw, normalised):
    assert normalise_address(raw) == normalised


def test_a_single_claim_for_a_suppressed_address_is_written_suppressed_and_never_enqueued(
    account, stub_broker
):
    # Given a phone number that opted out, written one way
    suppress(account.id, "whatsapp", "+33 6 12 34 56 78", "opt_out", "test")
    # When a message to the same number, written another way, is queued for that account
    row = queue_message("k-1", "whatsapp", "0033612345678", "Hello", account_id=account.id)
    # Then the row is suppressed, final, and no delivery was enqueued
    assert row.status == "suppressed"
    assert deliveries(stub_broker) == 0
    # And the same key again changes nothing
    assert queue_message("k-1", "whatsapp", "+33612345678", "Hi", account_id=account.id).id == (
        row.id
    )


def test_a_suppression_of_another_account_does_not_stop_this_one(account, clock, stub_broker):
    other = Account.create(name="Other", created_at=clock.now())
    suppress(other.id, "email", "lea@example.com", "unsubscribe", "test")
    row = queue_message("k-1", "email", "LEA@example.com", "Hello", account_id=account.id)
    assert row.status == "queued"
    assert deliveries(stub_broker) == 1
    # A message sent by hand for no account respects every account's list
    manual = queue_message("k-2", "email", "lea@example.com", "Hello")
    assert manual.status == "suppressed"


def test_many_claims_suppress_only_the_suppressed_addresses(account, stub_broker):
    suppress(account.id, "email", "b@example.com", "unsubscribe", "test")
    rows = queue_messages(
        [
            Outgoing("m-a", "email", "a@example.com", "Hello"),
            Outgoing("m-b", "email", "B@Example.com", "Hello"),
            Outgoing("m-c", "log", "c@example.com", "Hello"),
        ],
        source="manual",
        account_id=account.id,
    )
    assert {row.idempotency_key: row.status for row in rows} == {
        "m-a": "queued",
        "m-b": "suppressed",
        "m-c": "queued",
    }
    # Only the two queued rows were enqueued (one group)
    assert deliveries(stub_broker) == 1
    assert OutboxMessage.get(OutboxMessage.idempotency_key == "m-b").address == "b@example.com"


def test_an_address_suppressed_after_its_claim_is_not_sent(account, stub_broker, monkeypatch):
    # Given two queued messages, then one address opts out before the delivery runs
    first = queue_message("d-1", "log", "+33611111111", "Hello", account_id=account.id)
    second = queue_message("d-2", "log", "+33622222222", "Hello", account_id=account.id)
    suppress(account.id, "whatsapp", "33622222222@c.us", "opt_out", "test")
    sent = []
    from worker import delivery

    class Recording:
        name = "log"
        deduplicates = False

        def send(self, message):
            sent.append(message.recipient)
            return "provider-id"

    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: Recording())
    # When the window is delivered (twice: a redelivery)
    outcomes = deliver_many([first.id, second.id])
    again = deliver_many([first.id, second.id])
    # Then only the first was sent, once; the second ended suppressed with the reason
    assert sent == ["+33611111111"]
    assert outcomes == {first.id: Outcome.SENT, second.id: Outcome.SUPPRESSED}
    assert set(again.values()) == {Outcome.ALREADY_DONE}
    row = OutboxMessage.get_by_id(second.id)
    assert (row.status, row.last_error) == ("suppressed", delivery.SUPPRESSED_AFTER_CLAIM)


def test_lifting_a_suppression_lets_new_messages_through(account, stub_broker):
    suppress(account.id, "whatsapp", "+33611111111", "operator", "test")
    assert is_suppressed(account.id, "33611111111@c.us")
    assert lift(account.id, "+33 6 11 11 11 11") == 1
    assert not is_suppressed(account.id, "+33611111111")
    assert queue_message("l-1", "log", "+33611111111", "Hi", account_id=account.id).status == (
        "queued"
    )


def test_a_second_suppression_of_the_same_address_keeps_the_first(account):
    assert suppress(account.id, "email", "a@example.com", "unsubscribe", "first")
    assert not suppress(account.id, "email", "A@example.com", "bounce", "second")
