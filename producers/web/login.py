"""`/console/login` and `/console/logout`: an operator's email and password, throttled."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from producers.operators import authenticate
from producers.web.pages import render
from producers.web.security import LoginThrottle, csrf_valid, harden, start_session
from storage import clock
from worker.logging import get_logger

log = get_logger("outreach.web.console")


def routes(prefix: str) -> list[BaseRoute]:
    throttle = LoginThrottle()

    async def login(request: Request) -> Response:
        return harden(await login_checked(request))

    async def login_checked(request: Request) -> Response:
        if request.method == "GET":
            return render(request, "login.html", {"email": ""})
        form = await request.form()
        if not csrf_valid(request.session, form):
            log.warning("console.csrf_refused", path=request.url.path)
            return PlainTextResponse("refused: this form has no valid CSRF token", 403)
        email = str(form.get("email", ""))[:320]
        password = str(form.get("password", ""))
        client = request.client.host if request.client else "unknown"
        now = clock.now()
        if throttle.blocked(email, client, now):
            log.warning("console.login_throttled", client=client)
            context = {"email": email, "error": "too many failed logins: wait a minute"}
            return render(request, "login.html", context, status=429)
        user = await run_in_threadpool(authenticate, email, password)
        if user is None:
            throttle.failed(email, client, now)
            log.warning("console.login_failed", client=client)
            context = {"email": email, "error": "wrong email or password"}
            return render(request, "login.html", context, status=401)
        throttle.succeeded(email, client)
        start_session(request.session, user)
        log.info("console.login", operator_id=user.id, client=client)
        return RedirectResponse(f"{prefix}/", status_code=303)

    async def logout(request: Request) -> Response:
        return harden(await logout_checked(request))

    async def logout_checked(request: Request) -> Response:
        form = await request.form()
        if not csrf_valid(request.session, form):
            return PlainTextResponse("refused: this form has no valid CSRF token", 403)
        log.info("console.logout", operator_id=request.session.get("uid"))
        request.session.clear()
        return RedirectResponse(f"{prefix}/login", status_code=303)

    return [
        Route(f"{prefix}/login", login, methods=["GET", "POST"]),
        Route(f"{prefix}/logout", logout, methods=["POST"]),
    ]
