"""The console's session, CSRF tokens and login throttle.

The session is Starlette's: a cookie signed with itsdangerous under OUTREACH_SECRET_KEY,
HttpOnly and SameSite=Lax, Secure when the public URL is https. It holds the operator's id, a
stamp of their password hash (a new password ends older sessions) and the CSRF token every
form carries back.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections import deque
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import Response

from producers.operators import get_operator, session_stamp
from storage.models.accounts import Account
from storage.settings import Settings
from worker.secret import secret_key

SESSION_COOKIE = "outreach_console"
# A session ends after this long without a request (each answer signs the cookie afresh).
SESSION_MAX_AGE = 8 * 3600
CSRF_FIELD = "csrf_token"
# Failed logins allowed per (email, client address) in a window before logins are refused.
LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW = timedelta(minutes=1)
# Keys kept at most; past it, keys with no failure in the window are forgotten.
THROTTLE_MAX_KEYS = 10_000


# Sent with every console response: no framing (a confirm button cannot be clickjacked), forms
# post only here, nothing loaded from elsewhere, and pages with account data are not cached.
CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def harden(response: Response) -> Response:
    response.headers.update(CONSOLE_HEADERS)
    return response


def session_middleware(settings: Settings) -> Middleware:
    return Middleware(
        SessionMiddleware,
        # The key the unsubscribe links are signed with too (the development key when unset).
        secret_key=secret_key(settings).decode(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.public_url.lower().startswith("https://"),
    )


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """This session's token (made on first use), put in every form."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_valid(session: Mapping[str, Any], form: Mapping[str, Any]) -> bool:
    expected = session.get("csrf")
    given = form.get(CSRF_FIELD)
    if not isinstance(expected, str) or not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class Operator:
    """Who is logged in, and the one account whose data they see."""

    user_id: int
    email: str
    account_id: int
    account_name: str
    timezone: str


def start_session(session: MutableMapping[str, Any], user: Any) -> None:
    """Logged in: a fresh session (nothing of the anonymous one kept but a new CSRF token)."""
    session.clear()
    session["uid"] = user.id
    session["stamp"] = session_stamp(user)
    csrf_token(session)


def operator_of(session: Mapping[str, Any]) -> Operator | None:
    """The operator this session belongs to, if it still does (same password, still exists)."""
    user_id = session.get("uid")
    if not isinstance(user_id, int):
        return None
    user = get_operator(user_id)
    if user is None or not hmac.compare_digest(session_stamp(user), str(session.get("stamp"))):
        return None
    account = Account.get_by_id(user.account_id)
    return Operator(user.id, str(user.email), account.id, account.name, account.timezone)


class LoginThrottle:
    """Failed logins per (email, client address), kept in this process's memory.

    One web process serves the console (the Procfile's `web`); with several, each counts its
    own, so the limit is per process. A restart forgets the counts, which only gives a guesser
    a few more tries a minute.
    """

    def __init__(
        self, allowed: int = LOGIN_FAILURES_ALLOWED, window: timedelta = LOGIN_WINDOW
    ) -> None:
        self.allowed = allowed
        self.window = window
        self._failures: dict[tuple[str, str], deque[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: datetime) -> deque[datetime]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        return times

    def blocked(self, email: str, client: str, now: datetime) -> bool:
        key = (email.strip().lower(), client)
        with self._lock:
            blocked = len(self._recent(key, now)) >= self.allowed
            if not self._failures.get(key):
                self._failures.pop(key, None)
            return blocked

    def failed(self, email: str, client: str, now: datetime) -> None:
        with self._lock:
            if len(self._failures) >= THROTTLE_MAX_KEYS:
                for key in list(self._failures):
                    if not self._recent(key, now):
                        del self._failures[key]
            self._recent((email.strip().lower(), client), now).append(now)

    def succeeded(self, email: str, client: str) -> None:
        with self._lock:
            self._failures.pop((email.strip().lower(), client), None)
