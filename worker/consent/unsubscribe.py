"""Email unsubscribe links (RFC 8058): a signed token per outbox message, and what it does.

A token is the outbox row's id and an HMAC-SHA256 (first 128 bits) of the row's id, account,
channel and address under the secret key, base64url-encoded. Only the id is readable; the MAC
cannot be made without the key, so no link can be guessed or edited into another person's. A
token is checked by loading its row and computing the MAC again, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import struct
from dataclasses import dataclass

from storage import clock
from storage.db import write_transaction
from storage.errors import InvalidInput
from storage.models.consent import (
    HANDLED,
    UNSUBSCRIBE,
    UNSUBSCRIBE_LINK,
    InboundEvent,
    normalise_address,
)
from storage.models.outbox import OutboxMessage
from storage.settings import Settings, get_settings
from worker.consent.suppression import suppress
from worker.secret import secret_key

# Bytes of the MAC kept in a token: 128 bits, what a forger would have to guess.
MAC_BYTES = 16
# The outbox row id, as an unsigned 64-bit big-endian number.
_ID = struct.Struct(">Q")
# base64url of the id and the MAC, without padding: 24 bytes are exactly 32 characters.
TOKEN_LENGTH = 32
_TOKEN = re.compile(rf"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")
# Domain separation: the same key signs other things (operator sessions).
_PURPOSE = b"outreach.unsubscribe.v1"
# The only channel whose messages carry a link (List-Unsubscribe is an email header).
EMAIL = "email"
# How the link was used: a mailbox provider's one-click POST, or the button of the page.
ONE_CLICK = "one-click"
PAGE = "page"


class BadToken(InvalidInput):
    """A token that is malformed, names no message we sent for an account, or was tampered with."""


def _address(row: OutboxMessage) -> str:
    return row.address or normalise_address(row.recipient)


def _mac(key: bytes, row: OutboxMessage) -> bytes:
    fields = (str(row.id), str(row.account_id), row.channel, _address(row))
    message = b"\n".join([_PURPOSE, *(f.encode() for f in fields)])
    return hmac.new(key, message, hashlib.sha256).digest()[:MAC_BYTES]


def make_token(row: OutboxMessage, key: bytes | None = None) -> str:
    """The token of a message sent for an account (one without an account cannot unsubscribe)."""
    if row.account_id is None:
        raise InvalidInput(f"outbox message {row.id} is sent for no account: no unsubscribe link")
    raw = _ID.pack(row.id) + _mac(key or secret_key(), row)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unsubscribe_url(row: OutboxMessage, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return f"{settings.public_url.rstrip('/')}/unsubscribe/{make_token(row, secret_key(settings))}"


def unsubscribe_link(row: OutboxMessage) -> str | None:
    """The List-Unsubscribe link of an email sent for an account; None for any other message
    (another channel, or an email sent by hand for no account)."""
    if row.channel != EMAIL or row.account_id is None:
        return None
    return unsubscribe_url(row)


def verify_token(token: str, key: bytes | None = None) -> OutboxMessage:
    """The outbox row the token was made for; BadToken for anything else."""
    if not _TOKEN.match(token):
        raise BadToken("malformed unsubscribe token")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    (row_id,) = _ID.unpack(raw[: _ID.size])
    row = OutboxMessage.get_or_none(OutboxMessage.id == row_id)
    if row is None or row.account_id is None:
        raise BadToken("unknown unsubscribe token")
    if not hmac.compare_digest(raw[_ID.size :], _mac(key or secret_key(), row)):
        raise BadToken("unsubscribe token does not match")
    return row


@dataclass(frozen=True)
class Unsubscribed:
    outbox_id: int
    account_id: int
    # False when the address was suppressed already (the first reason is kept).
    added: bool


def unsubscribe(token: str, via: str) -> Unsubscribed:
    """Suppress the address the token's message went to, in that message's account, and keep
    the click as an inbound event (once per message); BadToken changes nothing."""
    row = verify_token(token)
    account_id = row.account_id
    assert account_id is not None  # verify_token refuses a message of no account
    now = clock.now()
    with write_transaction():
        added = suppress(
            account_id,
            row.channel,
            _address(row),
            UNSUBSCRIBE,
            f"unsubscribe link of outbox {row.id}",
        )
        InboundEvent.insert(
            provider=UNSUBSCRIBE_LINK,
            external_id=f"outbox:{row.id}",
            kind=via[:32],
            # Ids only: the address is on the outbox row and in the suppression.
            payload=json.dumps({"outbox_id": row.id, "via": via}),
            received_at=now,
            status=HANDLED,
            outcome="unsubscribed" if added else "already suppressed",
            handled_at=now,
        ).on_conflict_ignore().execute()
    return Unsubscribed(row.id, account_id, added)
