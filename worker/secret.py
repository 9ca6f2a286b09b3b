"""The key that signs what the web process hands out (unsubscribe links, operator sessions).

``OUTREACH_SECRET_KEY`` in production. Unset, a fixed development key is used, so a laptop works
with nothing configured; the log says so once per process, since anyone who reads this file can
sign with it.
"""

from __future__ import annotations

from storage.settings import Settings, get_settings
from worker.logging import get_logger

log = get_logger("outreach.secret")

# Used when OUTREACH_SECRET_KEY is unset: public, so good for a laptop only.
DEVELOPMENT_SECRET_KEY = "outreach-development-key-do-not-use-in-production"

_warned = False


def secret_key(settings: Settings | None = None) -> bytes:
    """The signing key: the configured one, or the development key (with a warning, once)."""
    global _warned
    configured = (settings or get_settings()).secret_key
    if configured:
        return configured.encode()
    if not _warned:
        _warned = True
        log.warning(
            "secret_key.development",
            reason="OUTREACH_SECRET_KEY is not set: signing with the public development key",
        )
    return DEVELOPMENT_SECRET_KEY.encode()
