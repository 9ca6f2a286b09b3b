"""`POST /inbound/waha`: WAHA's webhook, verified over the raw body, stored once, enqueued.

Events are stored in batches (producers.web.inbound_writer): a request is answered once its
event is committed, with the others that came in while the batch before it was written.

The route exists only when a webhook key is configured: an unsigned endpoint is never open.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from producers.web.inbound_writer import InboundWriter
from storage import clock
from storage.errors import InvalidInput
from storage.models.consent import WAHA
from worker.inbound import events
from worker.inbound.signature import BadSignature, verify
from worker.logging import get_logger

log = get_logger("outreach.web")

# The largest body accepted: a text message's event is a few kilobytes.
MAX_BODY_BYTES = 1024 * 1024
PATH = "/inbound/waha"


class TooLarge(Exception):
    pass


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, refused as soon as it passes `limit` (a declared length is not trusted)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def route(key: str) -> Route:
    writer = InboundWriter(WAHA)

    async def waha_event(request: Request) -> JSONResponse:
        try:
            body = await read_body(request)
        except TooLarge:
            return _refuse(413, f"body over {MAX_BODY_BYTES} bytes")
        headers = request.headers
        try:
            verify(
                body,
                key,
                headers.get("x-webhook-hmac"),
                headers.get("x-webhook-timestamp"),
                clock.now(),
                headers.get("x-webhook-hmac-algorithm"),
            )
        except BadSignature as exc:
            log.warning("inbound.refused", reason=str(exc))
            return _refuse(401, str(exc))
        try:
            identity, payload = events.parse_waha(body)
        except InvalidInput as exc:
            return _refuse(400, str(exc))
        try:
            stored = await writer.store(identity, payload)
        except Exception:
            # Logged by the writer; WAHA posts again what was not answered 2xx.
            return _refuse(503, "not stored, try again")
        return JSONResponse({"stored": stored})

    return Route(PATH, waha_event, methods=["POST"])


class WebhookFirst:
    """ASGI middleware: the webhook's POSTs go straight to its route (anything else goes the
    usual way, to the router's answers).

    The busiest path by far needs none of what the console's requests go through (the session
    cookie, the exception pages, a walk through every route): placed first among the app's
    middleware, this hands them to the route itself.
    """

    def __init__(self, app: ASGIApp, webhook: Route) -> None:
        self.app = app
        self.webhook = webhook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            await self.webhook.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)
