"""What every channel is: a name, a send, and errors that say whether to try again."""

from __future__ import annotations

import math
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlparse

from storage import clock
from storage.clock import as_utc
from storage.errors import ConfigurationError
from worker.channels.http import Answer, JsonPoster, MaybeSent, NotSent


class SendError(Exception):
    """A send that did not go through; `status_code` is the HTTP answer when there was one,
    `retry_after` the seconds its Retry-After header asked to wait."""

    def __init__(
        self, detail: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.retry_after = retry_after


class TransientSendError(SendError):
    """Worth trying again later: timeout, refused connection, 5xx, 429."""


class PermanentSendError(SendError):
    """Will never work as it is: a refused recipient, a 4xx, a feature the server lacks."""


class UncertainSendError(SendError):
    """The message may have reached the far end, but no answer came back (a read timeout, a
    connection dropped after the request went out). Sending again is safe only on a channel
    that deduplicates by key; elsewhere the outcome cannot be known."""


@dataclass(frozen=True)
class Media:
    url: str
    mime_type: str

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1] or "media"


@dataclass(frozen=True)
class Outbound:
    """One message as a channel sees it."""

    idempotency_key: str
    recipient: str
    body: str
    media: Media | None = None
    # Where the recipient unsubscribes (an email's List-Unsubscribe); None when they cannot
    # (another channel, or a message sent by hand for no account).
    unsubscribe_url: str | None = None
    # Who it goes out from (a sender's name, ``whatsapp:<session>``); None: the channel's own.
    sender: str | None = None


class Channel(Protocol):
    name: str
    # True when the far end drops a second send with the same idempotency key.
    deduplicates: bool

    def send(self, message: Outbound) -> str:
        """Send; return the provider's message id, or raise a SendError."""
        ...


# HTTP answers that mean "later": rate limited, or WAHA's 463 "slow down on new contacts".
RETRYABLE_HTTP_STATUSES = frozenset({408, 425, 429, 463})
# 5xx answers that will never change by themselves: the server lacks the feature.
PERMANENT_SERVER_STATUSES = frozenset({501, 505})


def raise_for_http_status(response: Answer, what: str) -> None:
    if response.is_success:
        return
    status = response.status_code
    # One line: the answer is often pretty-printed JSON, and errors are read line by line.
    detail = f"{what} answered HTTP {status}: {' '.join(response.text.split())[:200]}"
    if status in RETRYABLE_HTTP_STATUSES or (
        status >= 500 and status not in PERMANENT_SERVER_STATUSES
    ):
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        raise TransientSendError(detail, status_code=status, retry_after=retry_after)
    raise PermanentSendError(detail, status_code=status)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds: a number of seconds, or an HTTP date from now."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = (as_utc(when) - clock.now()).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def require_http_url(url: str | None, setting: str, channel: str) -> str:
    """A channel's base URL, checked once when the channel is built, not on every send."""
    if not url:
        raise ConfigurationError(f"{channel} channel: {setting} is not set")
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ConfigurationError(f"{setting}: expected http://host/... or https://host/...")
    return url


def post_json(
    poster: JsonPoster, url: str, payload: dict[str, object], headers: dict[str, str], what: str
) -> Answer:
    """POST with the network failures sorted: nothing sent (transient) or maybe sent (uncertain)."""
    try:
        response = poster.post(url, payload, headers)
    except NotSent as exc:
        when = "timed out before the request went out" if exc.timed_out else "unreachable"
        raise TransientSendError(f"{what} {when}: {exc}") from exc
    except MaybeSent as exc:
        when = "sent the request but no answer came" if exc.timed_out else "lost the connection"
        raise UncertainSendError(f"{what} {when}: {exc}") from exc
    raise_for_http_status(response, what)
    return response


def provider_id_from(response: Answer, fallback: str) -> str:
    """The id the far end gave the message, wherever it put it; the key when it gave none."""
    try:
        data = response.json()
    except ValueError:
        return fallback
    if isinstance(data, dict):
        value = data.get("id")
        if isinstance(value, dict):
            value = value.get("_serialized") or value.get("id")
        if value:
            return str(value)
    return fallback
