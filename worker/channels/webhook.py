"""POST the message as JSON to ``WEBHOOK_URL``; the receiver deduplicates by key."""

from __future__ import annotations

from worker.channels.base import Outbound, post_json, provider_id_from, require_http_url
from worker.channels.http import JsonPoster


class WebhookChannel:
    name = "webhook"
    # The receiver keeps the Idempotency-Key: sending again after a crash is safe.
    deduplicates = True

    def __init__(self, url: str | None, timeout: float) -> None:
        self.url = require_http_url(url, "WEBHOOK_URL", "webhook")
        self.client = JsonPoster(timeout)

    def send(self, message: Outbound) -> str:
        payload: dict[str, object] = {
            "idempotency_key": message.idempotency_key,
            "recipient": message.recipient,
            "body": message.body,
            "media": (
                {"url": message.media.url, "mimetype": message.media.mime_type}
                if message.media
                else None
            ),
        }
        headers = {"Idempotency-Key": message.idempotency_key}
        response = post_json(self.client, self.url, payload, headers, "webhook")
        return provider_id_from(response, fallback=message.idempotency_key)
