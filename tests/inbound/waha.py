"""WAHA webhook bodies and their signatures, as a WAHA server sends them."""

from __future__ import annotations

import json
import time
from itertools import count
from typing import Any

from worker.inbound.signature import sign

KEY = "test-webhook-key"
MEMBER_JID = "33612345678@c.us"
_ids = count(1)


def message(
    sender: str, text: str, *, message_id: str | None = None, from_me: bool = False
) -> bytes:
    event = {
        "id": f"evt_{next(_ids)}",
        "event": "message",
        "session": "default",
        "payload": {
            "id": message_id or f"false_{sender}_{next(_ids)}",
            "from": sender,
            "body": text,
            "fromMe": from_me,
            "timestamp": 1772442000,
        },
    }
    return json.dumps(event).encode()


def ack(message_id: str, level: int) -> bytes:
    event: dict[str, Any] = {
        "id": f"evt_{next(_ids)}",
        "event": "message.ack",
        "session": "default",
        "payload": {"id": message_id, "ack": level, "from": MEMBER_JID, "fromMe": True},
    }
    return json.dumps(event).encode()


def headers(body: bytes, key: str = KEY, *, at_ms: int | None = None) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "X-Webhook-Hmac": sign(body, key),
        "X-Webhook-Hmac-Algorithm": "sha512",
        "X-Webhook-Timestamp": str(at_ms if at_ms is not None else int(time.time() * 1000)),
        "X-Webhook-Request-Id": f"req_{next(_ids)}",
    }
