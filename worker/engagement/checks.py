"""The three checks of the daily run (seed 004), each one state and one due timestamp.

The same rule is used twice: as SQL by the sweep that finds due users, and in Python by the
per-user actor that re-reads the user before acting (the state may have changed since).
Boundaries are inclusive: 14 days to the minute sends the goodbye, 48 h to the minute ends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from peewee import Expression, Field

from storage.errors import InvalidInput
from storage.models.engagement import ACTIVE, GOODBYE_SENT, REMIND_LATER, EngagementState
from worker.engagement.state_machine import (
    GOODBYE_TIMEOUT,
    INACTIVITY_14D,
    REMINDER_DUE,
    Thresholds,
)


@dataclass(frozen=True)
class Check:
    # The check's name is the trigger it fires.
    name: str
    state: str
    # The timestamp column that makes a user due.
    due_field: str
    # Only the inactivity check sends something, so only it honours the opt-out.
    sends_goodbye: bool = False

    def cutoff(self, now: datetime, thresholds: Thresholds) -> datetime:
        """A user is due when their `due_field` is at or before this instant."""
        if self.name == INACTIVITY_14D:
            return now - thresholds.inactivity
        return now

    @property
    def column(self) -> Field:
        field: Field = getattr(EngagementState, self.due_field)
        return field

    def due_bound(self, now: datetime, thresholds: Thresholds) -> tuple[Field, datetime]:
        """The column and the bound it must be at or before: :meth:`due_condition` in parts."""
        return self.column, self.cutoff(now, thresholds)

    def due_condition(self, now: datetime, thresholds: Thresholds) -> Expression:
        """The SQL form of :meth:`is_due`."""
        return (EngagementState.state == self.state) & (self.column <= self.cutoff(now, thresholds))

    def is_due(self, row: Any, now: datetime, thresholds: Thresholds) -> bool:
        """`row`: an engagement state row, or any reading with the state and the due field."""
        value = getattr(row, self.due_field)
        return (
            row.state == self.state and value is not None and value <= self.cutoff(now, thresholds)
        )


INACTIVITY = Check(INACTIVITY_14D, ACTIVE, "last_activity_at", sends_goodbye=True)
TIMEOUT = Check(GOODBYE_TIMEOUT, GOODBYE_SENT, "goodbye_expires_at")
REMINDER = Check(REMINDER_DUE, REMIND_LATER, "remind_at")
# In the order the daily run performs them.
CHECKS = (INACTIVITY, TIMEOUT, REMINDER)
_BY_NAME = {check.name: check for check in CHECKS}


def get_check(name: str) -> Check:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InvalidInput(
            f"unknown check {name!r} (expected one of {', '.join(_BY_NAME)})"
        ) from None
