"""Masking of personal data (design invariant 6): phone numbers and email addresses."""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# A phone's shape: 8+ digits, optionally after a +, grouped by single spaces, dashes or dots.
# Never inside a word, a time, a date, a uuid or a decimal number: not after a word character,
# colon, dot or dash, and not followed by a word character or by ".5"/",5" (a decimal part).
_END = r"(?!\w|[.,]\d)"
_PHONE = re.compile(
    # Digits with single spaces: "0612345678", "+33 6 12 34 56 78", "0033 6 12 34 56 78".
    r"(?<![\w+:.-])\+?\d(?: ?\d){7,}"
    + _END
    # Dotted groups of 2 to 4 digits: "06.12.34.56.78", "415.555.2671" (checked in _mask_phone:
    # a dotted quad or a date is left alone; "12.345678" and "1.2.3456789" never match).
    + r"|(?<![\w+:.-])\+?\d{1,4}(?:\.\d{2,4}){2,}"
    + _END
    # After a +, dashes and brackets are a phone's too: "+1 (415) 555-2671", "tel:+4420...".
    + r"|(?<![\w+])\+\d(?:[ .-]?\(?\d\)?){7,}"
    + _END
    # National forms with an area code in brackets or dashes: "(415) 555-2671",
    # "415-555-2671", "06-12-34-56-78" (never a date's 4-2-2).
    + r"|(?<![\w(])\(\d{1,4}\)(?:[ .-]?\d){6,}(?!\d)"
    + r"|(?<![\w.-])(?:\d{3}-\d{3}-\d{4}|\d{2}(?:-\d{2}){4})(?![\w-])"
)
_DIGIT = re.compile(r"\d")
# Dotted shapes that are not phones: an IPv4 address, a date (2026.03.02, 02.03.2026).
_NOT_A_PHONE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}|\d{4}\.\d{2}\.\d{2}|\d{2}\.\d{2}\.\d{4}")


# Keys written by the logging pipeline itself, never personal data.
_UNMASKED_KEYS = frozenset({"timestamp", "level", "logger", "message_id"})


def mask(text: str) -> str:
    """Keep the first character/digit and the domain or last two digits, hide the rest."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_mask_phone, text)


def _mask_phone(match: re.Match[str]) -> str:
    found = match.group(0)
    if len(_DIGIT.findall(found)) < 8 or _NOT_A_PHONE.fullmatch(found):
        return found
    return f"{found[0]}***{found[-2:]}"


def mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_value(v) for v in value)
    return value


def mask_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: mask every string in the event."""
    return {
        key: value if key in _UNMASKED_KEYS else mask_value(value)
        for key, value in event_dict.items()
    }
