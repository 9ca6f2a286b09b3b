"""Unsubscribe tokens: made from an outbox row, checked against it, refused when changed."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest

from storage import clock as clock_module
from storage.errors import InvalidInput
from storage.models import Account, OutboxMessage
from storage.models.consent import normalise_address
from storage.settings import Settings
from worker import secret
from worker.consent.unsubscribe import (
    TOKEN_LENGTH,
    BadToken,
    make_token,
    unsubscribe_link,
    unsubscribe_url,
    verify_token,
)
from worker.logging import configure_logging

KEY = b"k" * 32


def outbox_row(
    n: int = 1, channel: str = "email", recipient: str = "Jane.Doe@Example.com", **fields
) -> OutboxMessage:
    values = {
        "idempotency_key": f"campaign:1:contact:{n}",
        "channel": channel,
        "recipient": recipient,
        "address": normalise_address(recipient),
        "body": "Hello",
        "source": "campaign",
        "created_at": clock_module.now(),
    }
    values.update(fields)
    return OutboxMessage.create(**values)


@pytest.fixture
def account_id(db, clock) -> int:
    return int(Account.create(name="Bakery", created_at=clock.now()).id)


def flip(token: str, at: int) -> str:
    """The token with one character replaced by another of the base64url alphabet."""
    replacement = "A" if token[at] != "A" else "B"
    return token[:at] + replacement + token[at + 1 :]


def test_a_token_verifies_as_the_row_it_was_made_for(account_id):
    # Given two emails of the account
    first = outbox_row(1, account_id=account_id)
    second = outbox_row(2, recipient="other@example.com", account_id=account_id)
    # When their tokens are made and checked
    tokens = [make_token(first, KEY), make_token(second, KEY)]
    # Then each names its own row, in 32 URL-safe characters, and they differ
    assert [verify_token(t, KEY).id for t in tokens] == [first.id, second.id]
    assert all(len(t) == TOKEN_LENGTH for t in tokens)
    assert tokens[0] != tokens[1]
    assert all("=" not in t and "+" not in t and "/" not in t for t in tokens)


def test_the_token_carries_the_id_and_128_bits_of_mac_only(account_id):
    row = outbox_row(account_id=account_id)
    raw = base64.urlsafe_b64decode(make_token(row, KEY) + "=" * 4)
    # The id is readable; the rest is a MAC, not the address nor the account
    assert int.from_bytes(raw[:8], "big") == row.id
    assert len(raw[8:]) == 16
    assert b"jane" not in raw.lower()


@pytest.mark.parametrize("at", [0, 7, 11, 20, TOKEN_LENGTH - 1])
def test_a_token_changed_anywhere_is_refused(account_id, at):
    row = outbox_row(account_id=account_id)
    outbox_row(2, recipient="other@example.com", account_id=account_id)
    with pytest.raises(BadToken):
        verify_token(flip(make_token(row, KEY), at), KEY)


def test_the_mac_of_one_row_does_not_open_another(account_id):
    # Given a token for row 1, and row 2 to another address
    mine = outbox_row(1, account_id=account_id)
    theirs = outbox_row(2, recipient="victim@example.com", account_id=account_id)
    raw = base64.urlsafe_b64decode(make_token(mine, KEY) + "=" * 4)
    # When the id in it is changed to row 2's
    forged = base64.urlsafe_b64encode(theirs.id.to_bytes(8, "big") + raw[8:]).decode()
    # Then it is refused
    with pytest.raises(BadToken, match="does not match"):
        verify_token(forged.rstrip("="), KEY)


def test_a_token_signed_with_another_key_is_refused(account_id):
    row = outbox_row(account_id=account_id)
    with pytest.raises(BadToken, match="does not match"):
        verify_token(make_token(row, b"another key"), KEY)


def test_a_token_stops_working_when_its_row_no_longer_says_what_was_signed(account_id):
    row = outbox_row(account_id=account_id)
    token = make_token(row, KEY)
    OutboxMessage.update(address="someone.else@example.com").where(
        OutboxMessage.id == row.id
    ).execute()
    with pytest.raises(BadToken):
        verify_token(token, KEY)


def test_a_token_of_a_row_that_does_not_exist_is_refused(account_id):
    row = outbox_row(account_id=account_id)
    token = make_token(row, KEY)
    OutboxMessage.delete().execute()
    with pytest.raises(BadToken, match="unknown"):
        verify_token(token, KEY)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "A" * (TOKEN_LENGTH - 1),
        "A" * (TOKEN_LENGTH + 1),
        "A" * (TOKEN_LENGTH - 2) + "==",
        "A" * (TOKEN_LENGTH - 1) + "/",
        "A" * (TOKEN_LENGTH - 1) + "\n",
        "é" * TOKEN_LENGTH,
        "1",
    ],
)
def test_malformed_tokens_are_refused_before_any_lookup(sqlite_db, clock, token):
    # (The refusal is the token's shape alone: one backend is enough.)
    outbox_row(account_id=1)
    with pytest.raises(BadToken, match="malformed"):
        verify_token(token, KEY)


def test_a_message_sent_for_no_account_gets_no_link_and_no_token(db, clock):
    row = outbox_row(account_id=None, source="manual")
    assert unsubscribe_link(row) is None
    with pytest.raises(InvalidInput, match="no account"):
        make_token(row, KEY)
    # Nor does a token made as if it had one open it
    row.account_id = 1
    token = make_token(row, KEY)
    with pytest.raises(BadToken, match="unknown"):
        verify_token(token, KEY)


def test_only_emails_get_a_link(account_id):
    whatsapp = outbox_row(1, channel="whatsapp", recipient="+33612345678", account_id=account_id)
    email = outbox_row(2, account_id=account_id)
    assert unsubscribe_link(whatsapp) is None
    assert unsubscribe_link(email) is not None


def test_the_url_is_the_public_url_and_the_token(account_id):
    row = outbox_row(account_id=account_id)
    settings = Settings(public_url="https://outreach.example.com/", secret_key="s3cret")
    url = unsubscribe_url(row, settings)
    assert url == f"https://outreach.example.com/unsubscribe/{make_token(row, b's3cret')}"


def test_without_a_secret_key_the_development_key_signs_and_the_log_says_so_once(
    account_id, monkeypatch
):
    monkeypatch.setattr(secret, "_warned", False)
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO", stream)
    try:
        keys = [secret.secret_key(Settings()) for _ in range(3)]
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)
    assert keys == [secret.DEVELOPMENT_SECRET_KEY.encode()] * 3
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["secret_key.development"]
    assert secret.secret_key(Settings(secret_key="mine")) == b"mine"
