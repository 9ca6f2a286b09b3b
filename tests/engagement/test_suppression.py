"""Consent wins over the goodbye (invariant 7): its own claim statement checks the suppression
list, the delivery checks it again, and the user is still moved. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from producers.embedded import drain
from producers.engagement import run_daily
from storage.models import Account, EngagementTransition, OutboxMessage, User, UserProfile
from storage.models.consent import Suppression
from storage.models.engagement import GOODBYE_SENT
from tests.engagement.conftest import state_of
from tests.lanes import delivery_messages
from worker import delivery
from worker.actors.engagement import process_engagement_user
from worker.channels import TransientSendError
from worker.consent.suppression import suppress
from worker.delivery import Outcome, deliver_many
from worker.engagement.answers import answer_goodbye
from worker.engagement.process import process_user
from worker.outbox import queue_message

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
    return len(delivery_messages(broker))


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


# --- a member who opted out: every address of theirs, never a group -----------------------


def suppressions() -> set[tuple[int, str, str, str, str]]:
    return {(s.account_id, s.channel, s.address, s.reason, s.source) for s in Suppression.select()}


def test_a_stop_answer_suppresses_every_address_of_the_user_but_not_their_group(
    make_user, account, stub_broker
):
    # Given a member reached in a group, with an email, a phone and their own WhatsApp id
    user_id = make_user(
        state=GOODBYE_SENT,
        destination="group",
        group_jid="120363000000@g.us",
        whatsapp_jid="33699999999@c.us",
    )
    User.update(email="Ana@Example.com").where(User.id == user_id).execute()
    # When they answer "stop" to the goodbye
    answer_goodbye(user_id, "stop")
    # Then each of their addresses is suppressed in their account, the group is not
    source = f"engagement:stop:user:{user_id}"
    assert suppressions() == {
        (account.id, "email", "ana@example.com", "opt_out", source),
        (account.id, "whatsapp", "33612345678", "opt_out", source),
        (account.id, "whatsapp", "33699999999", "opt_out", source),
    }
    # And a later message of any kind of work to them is suppressed; the group still gets its own
    to_them = queue_message("c-1", "email", "ana@example.com", "Hello", account_id=account.id)
    to_group = queue_message("c-2", "log", "120363000000@g.us", "Hello", account_id=account.id)
    assert (to_them.status, to_group.status) == ("suppressed", "queued")
    # And stopping again changes nothing
    answer_goodbye(user_id, "stop")
    assert Suppression.select().count() == 3


def test_the_run_that_meets_an_opted_out_user_suppresses_their_addresses_once(
    make_user, account, daily_run
):
    # Given an inactive user whose re-engagement opt-out flag was set outside engagement
    user_id = make_user(inactive_for=INACTIVE, opted_out=True)
    active = make_user(phone="+33600000001", whatsapp_jid=None)
    # When the daily run meets them, twice
    assert daily_run()["skipped"] == 1
    daily_run()
    # Then the opted-out user's number is suppressed once, and nobody else's
    assert suppressions() == {
        (account.id, "whatsapp", "33612345678", "opt_out", f"engagement:opt_out:user:{user_id}")
    }
    assert goodbyes() == []
    assert not Suppression.select().where(Suppression.source.endswith(f":{active}")).exists()


def test_a_user_who_opted_out_after_the_sweep_is_suppressed_when_their_message_is_worked(
    make_user, account, clock, stub_broker
):
    # Given a run that enqueued an inactive user, who then opted out
    user_id = make_user(inactive_for=INACTIVE)
    run_id = run_daily(clock.now())["run_id"]
    UserProfile.update(reengagement_opt_out=True).where(UserProfile.user == user_id).execute()
    # When their message is worked
    assert process_user(run_id, user_id, "inactivity_14d") == "skipped"
    # Then no goodbye, and their number is suppressed
    assert goodbyes() == []
    assert [s.address for s in Suppression.select()] == ["33612345678"]
