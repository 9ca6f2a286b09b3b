"""`GET /metrics`: the system's figures in Prometheus' text format, computed per scrape.

A registry of this module's own, not prometheus-client's global one: nothing else in the
process registers into it, and the figures come only from the database and Redis.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from producers.metrics import OutreachCollector


def registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutreachCollector())
    return registry


def route() -> Route:
    scraped = registry()

    def metrics(request: Request) -> Response:
        # Synchronous: Starlette runs it in its thread pool, as the queries need.
        return Response(generate_latest(scraped), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])
