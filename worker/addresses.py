"""Phone numbers and email addresses, checked and normalised one way for every kind of work.

Contacts, ads' owners and users all go through here, so the same person typed two ways is one
address everywhere (a contact list, a hunt's leads, an account's users).
"""

from __future__ import annotations

import re

from storage.errors import InvalidInput

# The longest email address SMTP carries (RFC 5321 path limit, as the columns hold).
MAX_EMAIL = 320

_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_PHONE = re.compile(r"^\+?\d{6,15}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_phone(raw: str | None) -> str | None:
    """Digits with an optional leading +; spaces, dots, dashes and brackets dropped.

    Blank is None (no phone); anything else that is not 6 to 15 digits is refused.
    """
    raw = (raw or "").strip()
    if not raw:
        return None
    phone = _PHONE_SEPARATORS.sub("", raw)
    if not _PHONE.match(phone):
        raise InvalidInput(f"phone {raw[:40]!r} is not a phone number (6 to 15 digits, optional +)")
    return phone


def normalise_email(raw: str | None) -> str | None:
    """Trimmed and lower-cased; blank is None (no email), a malformed address is refused."""
    raw = (raw or "").strip()
    if not raw:
        return None
    if len(raw) > MAX_EMAIL or not _EMAIL.match(raw):
        raise InvalidInput(f"email {raw[:80]!r} is not an email address")
    return raw.lower()
