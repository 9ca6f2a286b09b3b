"""`/healthz`: the process answers. `/readyz`: so do the database and the broker."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from storage.db import database


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _check_services() -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with database.connection_context():
            database.execute_sql("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unavailable: {type(exc).__name__}"
    broker = dramatiq.get_broker()
    if isinstance(broker, RedisBroker):
        try:
            broker.client.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
    else:
        checks["broker"] = "in-process"
    return checks


async def readyz(request: Request) -> JSONResponse:
    checks = await run_in_threadpool(_check_services)
    ready = all(value in ("ok", "in-process") for value in checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
