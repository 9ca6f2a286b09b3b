"""WhatsApp through the WAHA HTTP API."""

from __future__ import annotations

import re

from worker.channels.base import (
    Outbound,
    PermanentSendError,
    post_json,
    provider_id_from,
    require_http_url,
)
from worker.channels.http import JsonPoster

_NOT_A_DIGIT = re.compile(r"\D")
# How WAHA Core says an endpoint is a WAHA Plus feature (or not in this engine): HTTP 422
# "... is available only in Plus version" / "... not implemented by the engine", or a 501.
_NOT_IN_THIS_SERVER = re.compile(r"Plus version|not implemented", re.IGNORECASE)


def chat_id(recipient: str) -> str:
    """A phone number becomes ``33612345678@c.us``; a JID (``...@c.us``, ``...@g.us``) stays.

    The number must carry its country code (``+33 6 ...`` or ``0033 6 ...``): WhatsApp has no
    national numbers, and guessing the country could reach someone else.
    """
    if "@" in recipient:
        return recipient
    digits = _NOT_A_DIGIT.sub("", recipient)
    if digits.startswith("00"):
        digits = digits[2:]
    if len(digits) < 6:
        raise PermanentSendError("recipient is not a phone number or a WhatsApp id")
    if digits.startswith("0"):
        raise PermanentSendError("phone number has no country code (write it as +33 6 ...)")
    return f"{digits}@c.us"


class WhatsAppChannel:
    name = "whatsapp"
    deduplicates = False

    def __init__(self, url: str | None, api_key: str | None, session: str, timeout: float) -> None:
        self.url = require_http_url(url, "WAHA_URL", "whatsapp").rstrip("/")
        self.session = session
        self.headers = {"X-Api-Key": api_key} if api_key else {}
        self.client = JsonPoster(timeout)

    def session_of(self, message: Outbound) -> str:
        """The WAHA session of the message's sender (``whatsapp:<session>``), else the default."""
        if message.sender and message.sender.startswith(f"{self.name}:"):
            return message.sender.partition(":")[2] or self.session
        return self.session

    def send(self, message: Outbound) -> str:
        chat = chat_id(message.recipient)
        session = self.session_of(message)
        if message.media:
            path = "/api/sendImage"
            payload: dict[str, object] = {
                "session": session,
                "chatId": chat,
                "file": {
                    "url": message.media.url,
                    "mimetype": message.media.mime_type,
                    "filename": message.media.filename,
                },
                "caption": message.body,
            }
        else:
            path = "/api/sendText"
            payload = {"session": session, "chatId": chat, "text": message.body}
        try:
            response = post_json(self.client, self.url + path, payload, self.headers, "WAHA")
        except PermanentSendError as exc:
            if path == "/api/sendImage" and (
                exc.status_code == 501
                or (exc.status_code == 422 and _NOT_IN_THIS_SERVER.search(str(exc)))
            ):
                raise PermanentSendError(
                    "this WAHA server cannot send images (a WAHA Plus feature; WAHA Core "
                    f"sends text only): {exc}",
                    status_code=exc.status_code,
                ) from exc
            raise
        return provider_id_from(response, fallback=message.idempotency_key)
