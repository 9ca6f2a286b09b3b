"""The one clock of the code base (design invariant 5).

Domain code asks :func:`now` for the time and never calls ``datetime.now()`` itself, so tests
and the demo can move through days in seconds. Times are timezone-aware UTC.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to; safe to share between threads."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = as_utc(when)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


class FileClock:
    """Reads the time from a file on every call, so a test can move another process's clock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def now(self) -> datetime:
        return as_utc(datetime.fromisoformat(self.path.read_text().strip()))

    def set(self, when: datetime) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(as_utc(when).isoformat())
        tmp.replace(self.path)  # atomic, so a reader never sees half a timestamp


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already (that is how the database keeps it)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def clock_from_setting(setting: str) -> Clock:
    if setting.startswith("file:"):
        return FileClock(setting.removeprefix("file:"))
    return SystemClock()


_clock: Clock | None = None


def get_clock() -> Clock:
    global _clock
    if _clock is None:
        from storage.settings import get_settings

        _clock = clock_from_setting(get_settings().clock)
    return _clock


def set_clock(clock: Clock | None) -> None:
    """Replace the clock (tests, demo); None goes back to the configured one."""
    global _clock
    _clock = clock


def now() -> datetime:
    return get_clock().now()
