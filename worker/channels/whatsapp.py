"""WhatsApp through the WAHA HTTP API."""

from __future__ import annotations

import re

import httpx

from storage.errors import ConfigurationError
from worker.channels.base import (
    Outbound,
    PermanentSendError,
    post_json,
    provider_id_from,
)

_NOT_A_DIGIT = re.compile(r"\D")


def chat_id(recipient: str) -> str:
    """A phone number becomes ``33612345678@c.us``; a JID (``...@c.us``, ``...@g.us``) stays."""
    if "@" in recipient:
        return recipient
    digits = _NOT_A_DIGIT.sub("", recipient)
    if len(digits) < 6:
        raise PermanentSendError("recipient is not a phone number or a WhatsApp id")
    return f"{digits}@c.us"


class WhatsAppChannel:
    name = "whatsapp"
    deduplicates = False

    def __init__(self, url: str | None, api_key: str | None, session: str, timeout: float) -> None:
        if not url:
            raise ConfigurationError("whatsapp channel: WAHA_URL is not set")
        self.url = url.rstrip("/")
        self.session = session
        self.headers = {"X-Api-Key": api_key} if api_key else {}
        self.client = httpx.Client(timeout=timeout)

    def send(self, message: Outbound) -> str:
        chat = chat_id(message.recipient)
        if message.media:
            path = "/api/sendImage"
            payload: dict[str, object] = {
                "session": self.session,
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
            payload = {"session": self.session, "chatId": chat, "text": message.body}
        try:
            response = post_json(self.client, self.url + path, payload, self.headers, "WAHA")
        except PermanentSendError as exc:
            if path == "/api/sendImage" and ("Plus" in str(exc) or " 501" in str(exc)):
                raise PermanentSendError(
                    f"this WAHA server cannot send images (a WAHA Plus feature): {exc}"
                ) from exc
            raise
        return provider_id_from(response, fallback=message.idempotency_key)
