"""`POST /inbound/waha`: WAHA's webhook, verified over the raw body, stored once, enqueued.

The route exists only when a webhook key is configured: an unsigned endpoint is never open.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from storage import clock
from storage.db import database
from storage.errors import InvalidInput
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


def _store_and_enqueue(body: bytes) -> int | None:
    from worker.actors.inbound import handle_inbound_event

    with database.connection_context():
        event_id = events.record_waha(body)
    if event_id is not None:
        try:
            handle_inbound_event.send(event_id)
        except Exception as exc:
            # Stored is what matters: the relay enqueues what is still waiting.
            log.error("inbound.enqueue_failed", event_id=event_id, error=str(exc))
    return event_id


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


def route(key: str) -> Route:
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
            event_id = await run_in_threadpool(_store_and_enqueue, body)
        except InvalidInput as exc:
            return _refuse(400, str(exc))
        return JSONResponse({"stored": event_id is not None})

    return Route(PATH, waha_event, methods=["POST"])
