"""One retry backoff for every actor, from the settings (an operator's or a test's choice)."""

from __future__ import annotations

from typing import Any

from dramatiq import Middleware


class RetryBackoff(Middleware):
    """Sets every declared actor's ``min_backoff``/``max_backoff`` (milliseconds).

    Each actor keeps its own retry count; only the wait between attempts changes, so an outage
    of a known length can be ridden out faster (or slower) without touching the code.
    """

    def __init__(self, min_backoff_ms: int | None, max_backoff_ms: int | None) -> None:
        self.min_backoff_ms = min_backoff_ms
        self.max_backoff_ms = max_backoff_ms

    def after_declare_actor(self, broker: Any, actor: Any) -> None:
        if self.min_backoff_ms is not None:
            actor.options["min_backoff"] = self.min_backoff_ms
        if self.max_backoff_ms is not None:
            actor.options["max_backoff"] = self.max_backoff_ms
