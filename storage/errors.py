"""Errors an operator or a caller can cause, each with a message fit for one line."""

from __future__ import annotations


class OutreachError(Exception):
    """Bad input or a refused request: shown as one clear line, never retried."""


class NotFound(OutreachError):
    """An id that names nothing."""


class InvalidInput(OutreachError):
    """A value that can never be accepted (malformed file, negative limit, bad template)."""


class InvalidState(OutreachError):
    """A request that the current state of a record does not allow."""


class PermissionDenied(OutreachError):
    """A user acting on something they do not own."""


class ConfigurationError(OutreachError):
    """A setting that is missing or malformed."""
