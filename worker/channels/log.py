"""The dry-run channel: the send becomes one JSON log line."""

from __future__ import annotations

from worker.channels.base import Outbound
from worker.logging import get_logger

log = get_logger("outreach.channel.log")


class LogChannel:
    name = "log"
    deduplicates = False

    def send(self, message: Outbound) -> str:
        log.info(
            "message.sent",
            channel=self.name,
            idempotency_key=message.idempotency_key,
            recipient=message.recipient,
            body=message.body,
            media=message.media.url if message.media else None,
        )
        return f"log:{message.idempotency_key}"
