"""What an incoming WhatsApp message or ack does, applied once (SQLite and PostgreSQL)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from storage.db import database
from storage.models import EngagementState, OutboxMessage, UserProfile
from storage.models.consent import HANDLED, IGNORED, InboundEvent, Suppression
from storage.models.engagement import ACTIVE, DORMANT, GOODBYE_SENT, REMIND_LATER
from storage.models.outbox import CONSENT_SOURCE, SUPPRESSED
from tests.inbound import waha
from tests.inbound.conftest import deliver, make_member, sent_row
from worker.inbound.events import record_waha
from worker.inbound.handle import handle_event
from worker.outbox import queue_message


def _confirmations() -> list[OutboxMessage]:
    return list(OutboxMessage.select().where(OutboxMessage.source == CONSENT_SOURCE))


def test_a_stop_suppresses_the_address_stops_the_member_and_confirms_once(conversation, clock):
    # Given a member we wrote to on WhatsApp
    # When they answer STOP
    _, outcome = deliver(waha.message(waha.MEMBER_JID, "Stop!"))
    # Then the address is suppressed in the account, by an opt-out
    (suppression,) = Suppression.select()
    assert (suppression.account_id, suppression.address, suppression.reason) == (
        conversation.account_id,
        "33612345678",
        "opt_out",
    )
    assert outcome == "stop"
    # And the member is out of re-engagement
    assert UserProfile.get(UserProfile.user == conversation.user_id).reengagement_opt_out
    # And one confirmation is queued to them, the last message they get
    (confirmation,) = _confirmations()
    assert confirmation.recipient == waha.MEMBER_JID
    assert confirmation.status == "queued"
    # When they write STOP again (a new message), nothing more is sent
    deliver(waha.message(waha.MEMBER_JID, "STOP"))
    assert len(_confirmations()) == 1
    # And a campaign message to the same address afterwards is written suppressed
    later = queue_message(
        "campaign-after-stop",
        "whatsapp",
        "+33 6 12 34 56 78",
        "hi",
        account_id=conversation.account_id,
    )
    assert later.status == SUPPRESSED


@pytest.mark.parametrize("word", ["ARRÊT", "arret", "PARAR", "sair"])
def test_stop_words_of_every_locale_are_heard(conversation, word):
    deliver(waha.message(waha.MEMBER_JID, word))
    assert Suppression.select().count() == 1


def test_the_same_event_delivered_twice_is_stored_and_handled_once(conversation):
    # Given one STOP message that WAHA posts twice (a retry)
    body = waha.message(waha.MEMBER_JID, "STOP", message_id="false_dup_1")
    first, _ = deliver(body)
    second, outcome = deliver(body)
    # Then the second is not stored again and acts on nothing
    assert first is not None and second is None and outcome is None
    assert InboundEvent.select().count() == 1
    assert len(_confirmations()) == 1


def test_an_event_handled_by_two_workers_at_once_acts_once(conversation, db):
    # Given one stored STOP event, and two deliveries of its message at the same moment
    event_id = record_waha(waha.message(waha.MEMBER_JID, "STOP"))

    def handle() -> str | None:
        with database.connection_context():
            return handle_event(event_id)

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: handle(), range(2)))
    # Then exactly one applied it
    assert sorted(outcomes, key=str) == [None, "stop"]
    assert len(_confirmations()) == 1
    assert InboundEvent.get_by_id(event_id).status == HANDLED


@pytest.mark.parametrize(
    ("locale", "text", "state"),
    [
        ("fr", "2", REMIND_LATER),
        ("fr", "Plus tard", REMIND_LATER),
        ("pt-BR", "2", REMIND_LATER),
        ("pt-BR", "3", DORMANT),
        ("fr", "1", ACTIVE),
    ],
)
def test_a_goodbye_answer_by_number_or_word_is_the_engagement_answer(
    db, clock, locale, text, state
):
    # Given a member who was sent the goodbye, in their locale
    from storage.models import Account

    account = Account.create(name="Acme", created_at=clock.now())
    user_id = make_member(account, clock.now(), locale=locale, state=GOODBYE_SENT)
    sent_row(account.id, waha.MEMBER_JID, "goodbye-1", clock.now())
    # When they answer
    _, outcome = deliver(waha.message(waha.MEMBER_JID, text))
    # Then it is applied as `outreach engagement answer` would
    assert EngagementState.get(EngagementState.user == user_id).state == state
    assert outcome is not None and outcome.startswith("goodbye answer")


def test_any_other_text_from_a_member_is_activity(db, clock):
    from datetime import timedelta

    from storage.models import Account

    account = Account.create(name="Acme", created_at=clock.now())
    user_id = make_member(account, clock.now(), state=DORMANT)
    sent_row(account.id, waha.MEMBER_JID, "goodbye-1", clock.now())
    clock.advance(timedelta(days=1))
    _, outcome = deliver(waha.message(waha.MEMBER_JID, "hello, I'm here"))
    state = EngagementState.get(EngagementState.user == user_id)
    assert (state.state, state.last_activity_at) == (ACTIVE, clock.now())
    assert outcome == "member activity"


def test_strangers_and_our_own_echoes_are_stored_and_ignored(conversation):
    stranger, _ = deliver(waha.message("33700000000@c.us", "STOP"))
    echo, _ = deliver(waha.message(waha.MEMBER_JID, "STOP", from_me=True))
    assert [InboundEvent.get_by_id(i).status for i in (stranger, echo)] == [IGNORED, IGNORED]
    assert Suppression.select().count() == 0
    assert _confirmations() == []


def test_acks_record_delivered_and_read_times_and_never_go_back(conversation, clock):
    from datetime import timedelta

    deliver(waha.ack("true_1", 2))
    delivered_at = clock.now()
    clock.advance(timedelta(minutes=5))
    deliver(waha.ack("true_1", 3))
    clock.advance(timedelta(minutes=5))
    deliver(waha.ack("true_1", 2))  # late, out of order
    row = OutboxMessage.get_by_id(conversation.outbox_id)
    assert (row.ack, row.delivered_at, row.read_at) == (
        3,
        delivered_at,
        delivered_at + timedelta(minutes=5),
    )
    assert row.status == "sent"
    unknown, _ = deliver(waha.ack("true_nobody", 3))
    assert InboundEvent.get_by_id(unknown).status == IGNORED


def test_a_message_in_a_group_speaks_for_its_author_never_for_the_group(conversation):
    # Given a member who writes STOP in a WhatsApp group we are in
    import json

    body = json.loads(waha.message("120363041234567890@g.us", "STOP"))
    body["payload"]["participant"] = waha.MEMBER_JID
    deliver(json.dumps(body).encode())
    # Then the person is suppressed, and the group is not
    assert [s.address for s in Suppression.select()] == ["33612345678"]


@pytest.mark.parametrize("stored_as", ["33612345678", "+33612345678", "0033612345678"])
def test_a_member_is_found_by_phone_in_any_usual_form_within_the_account_only(db, clock, stored_as):
    from storage.models import Account, User
    from worker.inbound.conversations import member

    # Given a user of another account with the same number, then our member by phone, then a
    # second member of ours whose WhatsApp id is that number
    other = Account.create(name="Rival", created_at=clock.now())
    User.create(account=other, name="Not ours", phone="+33612345678", created_at=clock.now())
    ours = Account.create(name="Acme", created_at=clock.now())
    by_phone = User.create(account=ours, name="Ana", phone=stored_as, created_at=clock.now())
    UserProfile.create(user=by_phone, locale="pt-BR", created_at=clock.now())
    by_jid = User.create(account=ours, name="Bea", created_at=clock.now())
    UserProfile.create(
        user=by_jid, locale="fr", whatsapp_jid=waha.MEMBER_JID, created_at=clock.now()
    )
    # When a reply comes from that number
    found = member(ours.id, "33612345678")
    # Then the member is ours, the first one made, with the locale of their profile
    assert found is not None
    assert (found.user_id, found.locale) == (by_phone.id, "pt-BR")
    # And without the phone member, the WhatsApp id finds the other
    by_phone.delete_instance(recursive=True)
    assert member(ours.id, "33612345678") == type(found)(by_jid.id, "fr")
    assert member(ours.id, "33699999999") is None
