"""The unsubscribe link end to end: a campaign email received over real SMTP carries it, and
the Procfile's `web` process (uvicorn) answers it on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from email.message import Message

import pytest

from storage.models import CampaignRecipient, ContactList, InboundEvent, OutboxMessage
from storage.models.consent import Suppression
from tests.campaigns.helpers import deliver_queued, recipients_by_status
from tests.channels.conftest import SmtpRecorder
from worker.outbox import queue_message

pytestmark = pytest.mark.process

ONE_CLICK = {"content": b"List-Unsubscribe=One-Click"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
_LINK = re.compile(r"^<(http://127\.0\.0\.1:\d+/unsubscribe/[A-Za-z0-9_-]{32})>$")


def link_in(message: Message) -> str:
    # Unfolded as a mail reader does (a long header may go on a continuation line).
    header = re.sub(r"\r?\n(?=[ \t])", "", str(message["List-Unsubscribe"])).strip()
    found = _LINK.match(header)
    assert found, header
    return found.group(1)


def received_by(smtp: SmtpRecorder, address: str) -> Message:
    [message] = [m for m in smtp.messages if m["To"] == address]
    return message


def suppressed() -> list[tuple[int, str, str, str, str]]:
    return [
        (s.account_id, s.channel, s.address, s.reason, s.source)
        for s in Suppression.select().order_by(Suppression.id)
    ]


def forged(link: str) -> str:
    last = "A" if link[-1] != "A" else "B"
    return link[:-1] + last


def test_every_campaign_email_carries_a_one_click_link_of_its_own(
    db, email_env, smtp_server, make_list, send_campaign
):
    # Given an email campaign to three contacts
    contacts: ContactList = make_list(3)
    # When its batch is delivered to the SMTP server
    send_campaign(contacts, name="Spring offer")
    # Then each email has both RFC 8058 headers, and a link of its own
    assert len(smtp_server.messages) == 3
    links = {link_in(m) for m in smtp_server.messages}
    assert len(links) == 3
    for message in smtp_server.messages:
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_any_email_sent_for_an_account_carries_the_link_and_one_for_no_account_does_not(
    db, clock, email_env, smtp_server, account
):
    # Given an engagement email for the account, and an email sent by hand for no account
    queue_message(
        "goodbye:1",
        "email",
        "member@example.com",
        "Bye?",
        source="engagement",
        account_id=account.id,
    )
    queue_message("manual:1", "email", "someone@example.com", "Hi", source="manual")
    # When both are delivered
    deliver_queued()
    # Then the engagement email has both headers, and the manual one has neither
    engagement = received_by(smtp_server, "member@example.com")
    manual = received_by(smtp_server, "someone@example.com")
    assert link_in(engagement)
    assert engagement["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert manual["List-Unsubscribe"] is None and manual["List-Unsubscribe-Post"] is None


def test_a_one_click_post_of_the_link_unsubscribes_and_the_next_campaign_skips_the_address(
    db, web_process, smtp_server, owner, make_list, send_campaign
):
    # Given a campaign email received by contact1
    contacts = make_list(2)
    send_campaign(contacts, name="Spring offer")
    link = link_in(received_by(smtp_server, "contact1@example.com"))
    row = OutboxMessage.get(OutboxMessage.address == "contact1@example.com")
    # When the mailbox provider POSTs the one-click body to it, without cookies
    answer = web_process.client.post(link, headers=FORM, **ONE_CLICK)
    # Then the person is told, and the address is suppressed in the campaign's account
    assert answer.status_code == 200
    assert "You are unsubscribed" in answer.text
    assert "set-cookie" not in answer.headers
    assert suppressed() == [
        (
            owner.account_id,
            "email",
            "contact1@example.com",
            "unsubscribe",
            f"unsubscribe link of outbox {row.id}",
        )
    ]
    [event] = InboundEvent.select()
    assert (event.provider, event.external_id, event.kind) == (
        "unsubscribe",
        f"outbox:{row.id}",
        "one-click",
    )
    # When the provider POSTs it again (a retry): still unsubscribed, nothing doubled
    again = web_process.client.post(link, headers=FORM, **ONE_CLICK)
    assert again.status_code == 200
    assert len(suppressed()) == 1 and InboundEvent.select().count() == 1
    # When a new campaign goes to the same list
    smtp_server.messages.clear()
    summer = send_campaign(contacts, name="Summer offer")
    # Then the unsubscribed address is written `suppressed`, never sent; the other is sent
    assert [m["To"] for m in smtp_server.messages] == ["contact2@example.com"]
    new_row = OutboxMessage.get(
        (OutboxMessage.address == "contact1@example.com") & (OutboxMessage.id != row.id)
    )
    assert new_row.status == "suppressed"
    assert recipients_by_status(summer) == {"sent": 1, "skipped": 1}
    skipped = CampaignRecipient.get(
        (CampaignRecipient.campaign == summer.id) & (CampaignRecipient.status == "skipped")
    )
    assert "suppressed" in skipped.error


def test_the_get_page_changes_nothing_and_its_button_unsubscribes(
    db, web_process, smtp_server, make_list, send_campaign
):
    send_campaign(make_list(1), name="Spring offer")
    link = link_in(received_by(smtp_server, "contact1@example.com"))
    # When the person opens the link in a browser
    page = web_process.client.get(link)
    # Then a page with a button that POSTs to the same link, no script, and nothing suppressed
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    path = link.removeprefix(web_process.url)
    assert re.search(rf'<form method="post" action="{re.escape(path)}">', page.text)
    assert "<button" in page.text and "<script" not in page.text.lower()
    assert suppressed() == []
    # When they press the button (the form's own fields)
    pressed = web_process.client.post(link, data={"via": "page"})
    # Then they are unsubscribed, and the event says it came from the page
    assert pressed.status_code == 200
    assert "You are unsubscribed" in pressed.text
    assert [s[3] for s in suppressed()] == ["unsubscribe"]
    assert InboundEvent.get().kind == "page"


def test_a_forged_or_malformed_link_is_a_400_page_that_changes_nothing(
    db, web_process, smtp_server, make_list, send_campaign
):
    send_campaign(make_list(1), name="Spring offer")
    link = link_in(received_by(smtp_server, "contact1@example.com"))
    base = f"{web_process.url}/unsubscribe/"
    bad = [forged(link), base + "A" * 32, base + "not-a-token", base + "%00" * 32]
    for url in bad:
        # When a forged token is POSTed (one-click) or opened
        posted = web_process.client.post(url, headers=FORM, **ONE_CLICK)
        opened = web_process.client.get(url)
        # Then both are a 400 page, and nothing is suppressed or stored
        assert (posted.status_code, opened.status_code) == (400, 400), url
        assert "not valid" in posted.text and "not valid" in opened.text
    assert suppressed() == []
    assert InboundEvent.select().count() == 0
    # And the real link still works afterwards
    assert web_process.client.post(link, headers=FORM, **ONE_CLICK).status_code == 200
    assert len(suppressed()) == 1


def test_an_oversized_post_is_refused_and_changes_nothing(
    db, web_process, smtp_server, make_list, send_campaign
):
    send_campaign(make_list(1), name="Spring offer")
    link = link_in(received_by(smtp_server, "contact1@example.com"))
    answer = web_process.client.post(link, headers=FORM, content=b"x" * 10_000)
    assert answer.status_code == 413
    assert suppressed() == []
