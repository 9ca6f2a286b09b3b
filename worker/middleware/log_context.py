"""Binds structlog context per message, so every line it causes says which message and ids."""

from __future__ import annotations

from typing import Any

import structlog
from dramatiq import Middleware


class LogContext(Middleware):
    """Actors name the business ids in their arguments with ``log_context=("outbox_id", ...)``.

    The context is cleared when the next message starts, not when this one ends: the
    retries middleware still logs about the message after it has been processed.
    """

    @property
    def actor_options(self) -> set[str]:
        return {"log_context"}

    def before_process_message(self, broker: Any, message: Any) -> None:
        structlog.contextvars.clear_contextvars()
        context: dict[str, Any] = {
            "message_id": message.message_id,
            "actor": message.actor_name,
            "retries": message.options.get("retries", 0),
        }
        names = broker.get_actor(message.actor_name).options.get("log_context", ())
        context.update(zip(names, message.args, strict=False))
        context.update({k: v for k, v in message.kwargs.items() if k in names})
        structlog.contextvars.bind_contextvars(**context)
