"""Who hears that outbox rows ended: each source (campaigns, hunts) registers a handler.

Apart from the outbox and the delivery so that both (and the sources) can import it: the
delivery tells the sources, the outbox tells them of rows suppressed at the claim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from storage.models.outbox import FINAL_STATUSES, OutboxMessage

OutcomeHandler = Callable[[Sequence[OutboxMessage]], None]
_outcome_handlers: dict[str, list[OutcomeHandler]] = {}


def on_outcome(source: str) -> Callable[[OutcomeHandler], OutcomeHandler]:
    """Register a function called, in the same transaction, when rows of `source` end.

    It is called with the rows in their final status (sent, failed or unknown), each row once:
    campaigns record the recipients' outcomes, hunts give a failed contact's slot back.
    """

    def register(fn: OutcomeHandler) -> OutcomeHandler:
        _outcome_handlers.setdefault(source, []).append(fn)
        return fn

    return register


def has_outcome_handlers(source: str) -> bool:
    return bool(_outcome_handlers.get(source))


def notify_outcomes(messages: Sequence[OutboxMessage]) -> None:
    """Tell each row's source that it ended, a call per source for all its rows."""
    by_source: dict[str, list[OutboxMessage]] = {}
    for message in messages:
        assert message.status in FINAL_STATUSES, message.status
        by_source.setdefault(message.source, []).append(message)
    for source, rows in by_source.items():
        for handler in _outcome_handlers.get(source, ()):
            handler(rows)


def notify_outcome(message: OutboxMessage) -> None:
    notify_outcomes([message])
