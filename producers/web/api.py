"""The seeds' HTTP triggers as a small JSON API under ``/api/``, behind per-account tokens.

- ``POST /api/cron/hunts``: seed 001's cron route, today's hunt sweep;
- ``POST /api/cron/process-campaigns``: seed 002's campaign tick;
- ``POST /api/campaigns/{id}/run``: seed 003's runManually, for a campaign of the caller's
  account (another account's campaign is a 404, as if it did not exist);
- ``GET /api/campaigns/{id}``: the campaign's status, as ``outreach campaign status --json``.

The cron routes fire the schedule's current fire through :mod:`producers.scheduler.triggers`:
a second call, or the scheduler, never fires it again. They act for every account, as the
scheduler does, and only ever fire what is already due.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from producers.api_tokens import authenticate
from storage.db import database
from storage.errors import InvalidInput, InvalidState, NotFound, PermissionDenied
from storage.models.accounts import User
from storage.models.api_tokens import ApiToken
from storage.models.campaigns import Campaign
from worker.logging import get_logger

log = get_logger("outreach.web.api")

# The largest id both databases store (SQLite INTEGER, PostgreSQL bigint).
MAX_ID = 2**63 - 1

Handler = Callable[[Request, ApiToken], JSONResponse]


def _error(status: int, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers or None)


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticated(handler: Handler) -> Callable[[Request], JSONResponse]:
    """The handler, for a request with a live token; 401 otherwise, and nothing done.

    Synchronous on purpose: Starlette runs it in its thread pool, as the database needs.
    """

    def endpoint(request: Request) -> JSONResponse:
        with database.connection_context():
            token = authenticate(_bearer(request))
            if token is None:
                log.warning("api.refused", path=request.url.path)
                return _error(
                    401, "a valid API token is required", **{"WWW-Authenticate": "Bearer"}
                )
            try:
                return handler(request, token)
            except (NotFound, PermissionDenied) as exc:
                return _error(404, str(exc))
            except InvalidState as exc:
                return _error(409, str(exc))
            except InvalidInput as exc:
                return _error(400, str(exc))

    return endpoint


def _fired_by(token: ApiToken) -> str:
    return f"api:account-{token.account_id}:{token.token_id}"


def _cron(job: str) -> Handler:
    def fire(request: Request, token: ApiToken) -> JSONResponse:
        from producers.scheduler.triggers import fire_on_request, schedule_for

        answer = fire_on_request(schedule_for(job), _fired_by(token))
        return JSONResponse(answer, status_code=500 if answer.get("error") else 200)

    return fire


def _campaign_id(request: Request) -> int:
    campaign_id = int(request.path_params["campaign_id"])
    if not 1 <= campaign_id <= MAX_ID:  # no row has it (and SQLite would overflow)
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign_id


def owned_campaign(campaign_id: int, account_id: int) -> Campaign:
    """The campaign if a user of the account owns it; NotFound otherwise (the same answer
    whether it does not exist or belongs to another account: ids are not to be probed)."""
    campaign = (
        Campaign.select()
        .join(User, on=(Campaign.owner == User.id))
        .where((Campaign.id == campaign_id) & (User.account == account_id))
        .first()
    )
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


def _status(campaign_id: int) -> dict[str, Any]:
    from worker.campaigns.progress import campaign_status

    return campaign_status(campaign_id)


def campaign_status(request: Request, token: ApiToken) -> JSONResponse:
    campaign = owned_campaign(_campaign_id(request), token.account_id)
    return JSONResponse(_status(campaign.id))


def run_campaign(request: Request, token: ApiToken) -> JSONResponse:
    """Seed 003's runManually: a draft or scheduled campaign starts, its first batch now."""
    from producers.campaigns import enqueue_if_due
    from worker.campaigns.control import run_manually

    campaign = owned_campaign(_campaign_id(request), token.account_id)
    # As its owner: the account's token speaks for the account's users.
    run_manually(campaign.id, campaign.owner_id)
    batch = enqueue_if_due(campaign.id)
    log.info("api.campaign_run", campaign_id=campaign.id, batch=batch, by=_fired_by(token))
    return JSONResponse({**_status(campaign.id), "enqueued_batch": batch}, status_code=202)


def routes() -> list[BaseRoute]:
    from producers.scheduler.schedules import CAMPAIGNS_JOB, HUNTS_JOB

    return [
        Route("/api/cron/hunts", authenticated(_cron(HUNTS_JOB)), methods=["POST"]),
        Route("/api/cron/process-campaigns", authenticated(_cron(CAMPAIGNS_JOB)), methods=["POST"]),
        Route(
            "/api/campaigns/{campaign_id:int}/run",
            authenticated(run_campaign),
            methods=["POST"],
        ),
        Route("/api/campaigns/{campaign_id:int}", authenticated(campaign_status), methods=["GET"]),
    ]
