"""WAHA's webhook signature: HMAC-SHA512 of the raw body, hex-encoded, with a timestamp.

Checked over the raw bytes before anything parses them, in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from storage.errors import OutreachError

# A request signed longer ago than this is refused: a captured request cannot be replayed later.
MAX_AGE_SECONDS = 300
# ...and one dated this far ahead is refused too (a clock that far off is not ours).
MAX_SKEW_SECONDS = 60
# The only algorithm WAHA signs with, as its header names it.
ALGORITHM = "sha512"


class BadSignature(OutreachError):
    """The request is unsigned, wrongly signed or stale: refused, nothing stored."""


def sign(body: bytes, key: str) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def verify(
    body: bytes,
    key: str,
    signature: str | None,
    timestamp_ms: str | None,
    now: datetime,
    algorithm: str | None = ALGORITHM,
) -> None:
    """Raise BadSignature unless `signature` is the body's HMAC under `key`, made recently."""
    if not signature:
        raise BadSignature("unsigned request")
    if algorithm and algorithm.lower() != ALGORITHM:
        raise BadSignature(f"unexpected signature algorithm {algorithm!r}")
    # Bytes, not str: compare_digest refuses a str holding anything but ASCII.
    offered = signature.strip().lower().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(sign(body, key).encode(), offered):
        raise BadSignature("wrong signature")
    try:
        signed_at = int(timestamp_ms or "") / 1000
    except ValueError:
        raise BadSignature("missing or malformed timestamp") from None
    age = now.timestamp() - signed_at
    if age > MAX_AGE_SECONDS or age < -MAX_SKEW_SECONDS:
        raise BadSignature("stale request")
