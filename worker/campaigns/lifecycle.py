"""The campaign state machine, as plain rules: which move is allowed from which status.

draft ──schedule──> scheduled ──start──> running ──complete──> completed
  │                    │                   │
  └──run (by hand)─────┴───────────────────┘ (run: draft or scheduled, first batch now)
scheduled, running ──pause──> paused ──resume──> scheduled (not started) / running
draft, scheduled, running, paused ──cancel──> cancelled
scheduled, running ──fail──> failed (an unexpected error, kept in last_error)
"""

from __future__ import annotations

import enum

from storage.errors import InvalidState
from storage.models.campaigns import (
    CANCELLED,
    COMPLETED,
    DRAFT,
    FAILED,
    PAUSED,
    RUNNING,
    SCHEDULED,
)


class Move(enum.StrEnum):
    SCHEDULE = "schedule"
    RUN = "run"  # by hand: seed 003's runManually
    START = "start"  # the first due batch of a scheduled campaign
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    COMPLETE = "complete"
    FAIL = "fail"


# Statuses each move may start from.
ALLOWED_FROM: dict[Move, frozenset[str]] = {
    Move.SCHEDULE: frozenset({DRAFT}),
    Move.RUN: frozenset({DRAFT, SCHEDULED}),
    Move.START: frozenset({SCHEDULED}),
    Move.PAUSE: frozenset({SCHEDULED, RUNNING}),
    Move.RESUME: frozenset({PAUSED}),
    Move.CANCEL: frozenset({DRAFT, SCHEDULED, RUNNING, PAUSED}),
    Move.COMPLETE: frozenset({RUNNING}),
    Move.FAIL: frozenset({SCHEDULED, RUNNING}),
}

# Where no move leads out again.
FINAL_STATUSES = frozenset({COMPLETED, CANCELLED, FAILED})
# Statuses whose due batches the tick enqueues.
DUE_STATUSES = (SCHEDULED, RUNNING)

# A word more for the refusals an operator meets most.
_HINTS: dict[tuple[Move, str], str] = {
    (Move.RUN, RUNNING): "it is already running",
    (Move.RUN, PAUSED): "it is paused (resume it instead)",
    (Move.RESUME, RUNNING): "it is running, not paused",
    (Move.RESUME, SCHEDULED): "it is scheduled, not paused",
}


def target(move: Move, current: str, *, started: bool = False, what: str = "campaign") -> str:
    """The status `move` leads to from `current`, or InvalidState with a one-line reason."""
    if current not in ALLOWED_FROM[move]:
        reason = _HINTS.get((move, current), f"it is {current}")
        raise InvalidState(f"cannot {move} {what}: {reason}")
    if move is Move.SCHEDULE:
        return SCHEDULED
    if move in (Move.RUN, Move.START):
        return RUNNING
    if move is Move.PAUSE:
        return PAUSED
    if move is Move.RESUME:
        # A campaign paused before its first batch goes back to waiting for it.
        return RUNNING if started else SCHEDULED
    if move is Move.CANCEL:
        return CANCELLED
    if move is Move.COMPLETE:
        return COMPLETED
    return FAILED
