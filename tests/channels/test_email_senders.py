"""An account's own email sender: its messages go out from its address, through the outbox and
the delivery, to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import pytest

from storage.errors import InvalidInput
from storage.models import Account, OutboxMessage
from storage.models.senders import Sender
from worker.delivery import Outcome, deliver
from worker.outbox import queue_message
from worker.senders import configure_sender


def test_an_accounts_email_sender_is_the_from_address_of_its_messages(
    db, clock, channel_env, smtp_server
):
    # Given an account whose email sender is sales@acme.test, and SMTP_FROM another address
    account = Account.create(name="Acme", sending_hours="always", created_at=clock.now())
    configure_sender("email:sales@acme.test", account_id=account.id)
    # When one of its messages, and one of no account, are queued and delivered
    own = queue_message("k-acme", "email", "jane.doe@example.com", "hi", account_id=account.id)
    other = queue_message("k-manual", "email", "john.roe@example.com", "hi")
    assert deliver(own.id) is Outcome.SENT
    assert deliver(other.id) is Outcome.SENT
    # Then the account's went out from its address, the other from SMTP_FROM
    assert OutboxMessage.get_by_id(own.id).sender == "email:sales@acme.test"
    assert sorted(smtp_server.envelopes) == [
        ("outreach@example.org", ["john.roe@example.com"]),
        ("sales@acme.test", ["jane.doe@example.com"]),
    ]
    froms = {m["To"]: m["From"] for m in smtp_server.messages}
    assert froms == {
        "jane.doe@example.com": "sales@acme.test",
        "john.roe@example.com": "outreach@example.org",
    }


def test_an_email_sender_that_is_not_an_address_is_refused(db, clock):
    # When an email sender is named with something that is not an address
    # Then it is refused, and nothing is written
    with pytest.raises(InvalidInput, match="does not name an email address"):
        configure_sender("email:sales-team")
    assert not list(Sender.select())
