"""The ASGI application of the ``web`` process: ``uvicorn --factory producers.web.app:create_app``.

Routes come from one module per concern. In embedded mode (no ``REDIS_URL``) the process also
runs an in-process worker, so what it stores is handled without a worker fleet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import dramatiq
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from producers.embedded import EMBEDDED_WORKER_THREADS
from storage.settings import Settings, get_settings
from worker.logging import get_logger
from worker.secret import secret_key

log = get_logger("outreach.web")

# Threads that run the routes' database work: within the connection pool (storage.db), with
# room left for the in-process worker of the embedded mode.
WEB_THREADS = 16


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    import worker.actors  # noqa: F401  (sets up the broker and declares the actors)
    from producers.web import api, console, health, metrics, unsubscribe, waha
    from producers.web.security import session_middleware
    from worker.broker import is_embedded

    routes: list[BaseRoute] = [
        *health.routes,
        *unsubscribe.routes,
        metrics.route(),
        *api.routes(),
    ]
    middleware = [session_middleware(settings)]
    if settings.waha_webhook_key:
        webhook = waha.route(settings.waha_webhook_key)
        routes.append(webhook)
        # Before the session's middleware: the webhook's requests skip it and the route walk.
        middleware.insert(0, Middleware(waha.WebhookFirst, webhook=webhook))
    else:
        log.warning("web.waha_off", reason="WAHA_WEBHOOK_KEY is not set")
    secret_key(settings)  # says so in the log now when the development key signs the links
    routes.extend(console.routes())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WEB_THREADS
        worker = None
        if is_embedded():
            worker = dramatiq.Worker(dramatiq.get_broker(), worker_threads=EMBEDDED_WORKER_THREADS)
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
