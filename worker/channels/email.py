"""Email over SMTP (``SMTP_URL`` like ``smtp://user:pass@host:587?starttls=1``)."""

from __future__ import annotations

import hashlib
import smtplib
from email.message import EmailMessage
from email.utils import parseaddr
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlparse

from storage.errors import ConfigurationError
from worker.channels.base import (
    Outbound,
    PermanentSendError,
    TransientSendError,
    UncertainSendError,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

# The List-Unsubscribe-Post value that announces one-click unsubscribe (RFC 8058).
ONE_CLICK_POST = "List-Unsubscribe=One-Click"


def message_id(idempotency_key: str, sender: str) -> str:
    """The same key always gives the same Message-ID, so a receiver can drop a second copy.

    Hashed because a key may hold characters a Message-ID cannot (``:`` for one).
    """
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<outreach.{digest}@{domain}>"


def sender_address(sender: str | None) -> str | None:
    """The From address a sender names (``email:<address>``); None for another channel's sender,
    or none. Raises PermanentSendError when the identity is not an email address."""
    if not sender or not sender.startswith("email:"):
        return None
    identity = sender.partition(":")[2].strip()
    address = parseaddr(identity)[1]
    if not address or "@" not in address or " " in address:
        raise PermanentSendError(f"sender {sender!r} does not name an email address")
    return identity


class _TrackedSMTP(smtplib.SMTP):
    """Remembers whether the message itself went out: a failure after that point is uncertain."""

    data_started = False

    def data(self, msg: Buffer | str) -> tuple[int, bytes]:
        self.data_started = True
        return super().data(msg)


class _TrackedSMTPSSL(smtplib.SMTP_SSL):
    data_started = False

    def data(self, msg: Buffer | str) -> tuple[int, bytes]:
        self.data_started = True
        return super().data(msg)


class EmailChannel:
    name = "email"
    deduplicates = False

    def __init__(self, url: str | None, sender: str, subject: str, timeout: float) -> None:
        if not url:
            raise ConfigurationError("email channel: SMTP_URL is not set")
        parsed = urlparse(url)
        try:
            port = parsed.port
        except ValueError:
            raise ConfigurationError("SMTP_URL: the port is not a number") from None
        if parsed.scheme not in {"smtp", "smtps"} or not parsed.hostname:
            raise ConfigurationError("SMTP_URL: expected smtp://host:port or smtps://host:port")
        self.ssl = parsed.scheme == "smtps"
        self.host = parsed.hostname
        self.port = port or (465 if self.ssl else 25)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.starttls = parse_qs(parsed.query).get("starttls", ["0"])[0] in {"1", "true", "yes"}
        self.sender = sender
        self.subject = subject
        self.timeout = timeout

    def _compose(self, message: Outbound) -> EmailMessage:
        # The message's own sender (an account's from-address), else SMTP_FROM.
        sender = sender_address(message.sender) or self.sender
        email = EmailMessage()
        email["From"] = sender
        email["To"] = message.recipient
        email["Subject"] = self.subject
        email["Message-ID"] = message_id(message.idempotency_key, sender)
        email["X-Idempotency-Key"] = message.idempotency_key
        if message.unsubscribe_url:
            # RFC 8058 one-click: the mailbox provider POSTs "List-Unsubscribe=One-Click" there.
            email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            email["List-Unsubscribe-Post"] = ONE_CLICK_POST
        body = message.body
        if message.media:
            body += f"\n\n{message.media.url}"
        email.set_content(body)
        return email

    def send(self, message: Outbound) -> str:
        email = self._compose(message)
        smtp_class = _TrackedSMTPSSL if self.ssl else _TrackedSMTP
        smtp: _TrackedSMTP | _TrackedSMTPSSL | None = None
        try:
            with smtp_class(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            detail = f"recipient refused: {exc.recipients}"
            # 4xx at RCPT is "later" (greylisting, a full mailbox), not a refusal.
            if all(400 <= code < 500 for code, _ in exc.recipients.values()):
                raise TransientSendError(detail) from exc
            raise PermanentSendError(detail) from exc
        except smtplib.SMTPResponseException as exc:
            detail = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            if 400 <= exc.smtp_code < 500:
                raise TransientSendError(detail) from exc
            raise PermanentSendError(detail) from exc
        except OSError as exc:  # refused, timed out or dropped (smtplib's errors are OSErrors)
            if smtp is not None and smtp.data_started:
                # The message may be on the server already: no answer is not a "no".
                raise UncertainSendError(f"SMTP server did not answer the message: {exc}") from exc
            raise TransientSendError(f"SMTP server unreachable: {exc}") from exc
        return str(email["Message-ID"])
