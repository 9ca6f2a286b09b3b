"""The operator console: server-rendered pages under /console, plain forms, no JavaScript.

Every page needs a logged-in operator and shows their account only (see producers.web.panels);
every POST carries the session's CSRF token (403 without it) and, for an action, a ticked
confirmation box. Actions call the same functions as the CLI and are logged with who did them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from producers.web import login, panels
from producers.web.pages import HERE, PREFIX, render
from producers.web.security import Operator, csrf_valid, harden, operator_of
from storage import clock
from storage.db import database
from storage.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidState,
    NotFound,
    OutreachError,
    PermissionDenied,
)
from storage.models.accounts import Account
from worker.logging import get_logger

log = get_logger("outreach.web.console")

Handler = Callable[[Request, Operator, FormData | None], Response]
# The HTTP status each refusal of the domain becomes.
_STATUS: list[tuple[type[OutreachError], int]] = [
    (NotFound, 404),
    (PermissionDenied, 403),
    (InvalidState, 409),
    (InvalidInput, 400),
    (ConfigurationError, 503),
]


def refused(request: Request, operator: Operator | None, status: int, reason: str) -> Response:
    return render(request, "refused.html", {"reason": reason}, operator, status)


def back(request: Request, path: str, message: str) -> Response:
    """After an action: what happened, shown once on the page it came from."""
    request.session["flash"] = message
    return RedirectResponse(PREFIX + path, status_code=303)


def page(handler: Handler) -> Callable[[Request], Any]:
    """A console endpoint: CSRF checked on POST, an operator required, domain refusals shown."""

    async def endpoint(request: Request) -> Response:
        return harden(await checked(request))

    async def checked(request: Request) -> Response:
        form = None
        if request.method == "POST":
            form = await request.form()
            if not csrf_valid(request.session, form):
                log.warning("console.csrf_refused", path=request.url.path)
                return PlainTextResponse("refused: this form has no valid CSRF token", 403)

        def work() -> Response:
            with database.connection_context():
                operator = operator_of(request.session)
                if operator is None:
                    return RedirectResponse(f"{PREFIX}/login", status_code=303)
                try:
                    return handler(request, operator, form)
                except OutreachError as exc:
                    status = next(code for kind, code in _STATUS if isinstance(exc, kind))
                    return refused(request, operator, status, str(exc))
                except redis.exceptions.ConnectionError as exc:
                    log.error("console.redis_unavailable", error=str(exc))
                    return refused(request, operator, 503, "Redis is unavailable; try again")

        return await run_in_threadpool(work)

    return endpoint


def confirmed(form: FormData | None) -> FormData:
    if form is None or form.get("confirm") != "yes":
        raise InvalidInput("tick the confirmation box to do this")
    return form


def acted(operator: Operator, action: str, **target: Any) -> None:
    log.info(
        "console.action",
        action=action,
        operator_id=operator.user_id,
        account_id=operator.account_id,
        **target,
    )


# --- pages -------------------------------------------------------------------------------------


def overview(request: Request, operator: Operator, form: FormData | None) -> Response:
    account = Account.get_by_id(operator.account_id)
    data = panels.overview(account, clock.now())
    return render(request, "overview.html", data, operator)


def campaigns(request: Request, operator: Operator, form: FormData | None) -> Response:
    rows = panels.campaigns(operator.account_id)
    return render(request, "campaigns.html", {"rows": rows}, operator)


def campaign(request: Request, operator: Operator, form: FormData | None) -> Response:
    detail = panels.campaign_detail(operator.account_id, request.path_params["campaign_id"])
    return render(request, "campaign.html", detail, operator)


def hunts(request: Request, operator: Operator, form: FormData | None) -> Response:
    account = Account.get_by_id(operator.account_id)
    return render(request, "hunts.html", {"rows": panels.hunts(account, clock.now())}, operator)


def engagement(request: Request, operator: Operator, form: FormData | None) -> Response:
    return render(request, "engagement.html", panels.engagement(operator.account_id), operator)


def review(request: Request, operator: Operator, form: FormData | None) -> Response:
    unknown = panels.unknown_rows(operator.account_id)
    dead: list[tuple[Any, bool]] | None
    try:
        dead = panels.visible_dead(operator.account_id)
    except ConfigurationError:
        dead = None  # the in-process broker keeps no dead letters
    return render(request, "review.html", {"unknown": unknown, "dead": dead}, operator)


# --- actions -----------------------------------------------------------------------------------

CAMPAIGN_MOVES = ("pause", "resume", "cancel", "run-now")


def campaign_action(request: Request, operator: Operator, form: FormData | None) -> Response:
    from producers.campaigns import enqueue_batch, enqueue_if_due
    from storage.models.campaigns import DRAFT, SCHEDULED
    from worker.campaigns import control

    campaign_id = request.path_params["campaign_id"]
    move = request.path_params["move"]
    # Ownership first: another account's campaign is not found, whatever the move.
    campaign = panels.owned_campaign(operator.account_id, campaign_id)
    if move not in CAMPAIGN_MOVES:
        raise NotFound(f"no action {move!r}")
    confirmed(form)
    # The operator acts for the account (the CLI's operator, without --as-user); starting a
    # draft or scheduled campaign is seed 003's runManually, which only its owner may do.
    if move == "pause":
        changed = control.pause(campaign.id)
    elif move == "resume":
        changed = control.resume(campaign.id)
        enqueue_if_due(campaign.id)
    elif move == "cancel":
        changed = control.cancel(campaign.id)
    elif campaign.status in (DRAFT, SCHEDULED):
        changed = control.run_manually(campaign.id, operator.user_id)
        enqueue_if_due(campaign.id)
    else:
        batch = enqueue_batch(campaign.id)["batch_number"]
        acted(operator, "campaign.run-now", campaign_id=campaign.id, batch_number=batch)
        return back(request, f"/campaigns/{campaign.id}", f"batch {batch} enqueued")
    acted(operator, f"campaign.{move}", campaign_id=campaign.id, status=changed.status)
    return back(request, f"/campaigns/{campaign.id}", f"campaign {move}: now {changed.status}")


def resolve_unknown(request: Request, operator: Operator, form: FormData | None) -> Response:
    from producers.outbox_review import resolve

    outbox_id = request.path_params["outbox_id"]
    panels.owned_unknown(operator.account_id, outbox_id)
    checked = confirmed(form)
    action = str(checked.get("action", ""))
    reason = str(checked.get("reason", ""))
    row = resolve(outbox_id, action, f"operator {operator.user_id}", reason)
    acted(operator, f"outbox.{action}", outbox_id=outbox_id, status=row.status)
    return back(request, "/review", f"outbox message {outbox_id}: {row.status}")


def requeue_dead(request: Request, operator: Operator, form: FormData | None) -> Response:
    from producers.dlq import redis_broker, requeue

    checked = confirmed(form)
    visible = [d for d, _ in panels.visible_dead(operator.account_id)]
    if checked.get("all") == "yes":
        targets = [d for d in visible if d.readable]
    else:
        wanted = str(checked.get("message_id", ""))
        targets = [d for d in visible if wanted in (d.message_id, d.redis_id)]
        if not targets:
            raise NotFound(f"no dead-lettered message {wanted}")
        if not targets[0].readable:
            raise InvalidInput(f"dead message {wanted} is not a Dramatiq message")
    broker = redis_broker()
    done = [d.message_id for d in targets if requeue(broker, d)]
    for message_id in done:
        acted(operator, "dlq.requeue", message_id=message_id)
    return back(request, "/review", f"{len(done)} dead message(s) requeued")


def routes() -> list[BaseRoute]:
    return [
        Route("/", lambda request: RedirectResponse(f"{PREFIX}/", status_code=303)),
        *login.routes(PREFIX),
        Route(f"{PREFIX}/", page(overview)),
        Route(f"{PREFIX}/campaigns", page(campaigns)),
        Route(f"{PREFIX}/campaigns/{{campaign_id:int}}", page(campaign)),
        Route(
            f"{PREFIX}/campaigns/{{campaign_id:int}}/{{move}}",
            page(campaign_action),
            methods=["POST"],
        ),
        Route(f"{PREFIX}/hunts", page(hunts)),
        Route(f"{PREFIX}/engagement", page(engagement)),
        Route(f"{PREFIX}/review", page(review)),
        Route(f"{PREFIX}/review/outbox/{{outbox_id:int}}", page(resolve_unknown), methods=["POST"]),
        Route(f"{PREFIX}/review/dead", page(requeue_dead), methods=["POST"]),
        Mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
