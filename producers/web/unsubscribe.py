"""`/unsubscribe/{token}`: the link of every email's List-Unsubscribe header (RFC 8058).

A POST unsubscribes: a mailbox provider's one-click (body ``List-Unsubscribe=One-Click``, no
cookies: the signed token in the URL is the whole authority), or the button of the page a GET
shows. A GET itself changes nothing, since mail scanners and link previews fetch links.
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from producers.web.waha import TooLarge, read_body
from storage.db import database
from worker.consent.unsubscribe import ONE_CLICK, PAGE, BadToken, unsubscribe, verify_token
from worker.logging import get_logger

log = get_logger("outreach.web")

# The largest form accepted: the one-click body is 26 bytes, the page's button sends less.
MAX_FORM_BYTES = 4096
PATH = "/unsubscribe/{token}"
# Neither cached nor passed on in a Referer: the URL is the person's own credential.
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto; padding: 0 1em">
<h1>{title}</h1>
{content}
</body>
</html>
"""


def _page(title: str, content: str, status: int = 200) -> HTMLResponse:
    html = _PAGE.format(title=escape(title), content=content)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _bad_link() -> HTMLResponse:
    return _page(
        "This link does not work",
        "<p>This unsubscribe link is not valid: it may have been cut or changed. Use the link "
        "in the email itself, or reply to it and ask to be removed.</p>",
        status=400,
    )


def _check(token: str) -> None:
    with database.connection_context():
        verify_token(token)


def _unsubscribe(token: str, via: str) -> None:
    with database.connection_context():
        done = unsubscribe(token, via)
    log.info("unsubscribe.done", outbox_id=done.outbox_id, account_id=done.account_id, via=via)


async def confirm_page(request: Request) -> HTMLResponse:
    token = request.path_params["token"]
    try:
        await run_in_threadpool(_check, token)
    except BadToken as exc:
        log.warning("unsubscribe.refused", reason=str(exc))
        return _bad_link()
    action = escape(request.url.path, quote=True)
    return _page(
        "Unsubscribe",
        "<p>Press the button to receive no more emails at this address from this sender.</p>"
        f'<form method="post" action="{action}">'
        f'<input type="hidden" name="via" value="{PAGE}">'
        '<button type="submit">Unsubscribe</button></form>',
    )


async def one_click(request: Request) -> HTMLResponse:
    token = request.path_params["token"]
    try:
        body = await read_body(request, MAX_FORM_BYTES)
    except TooLarge:
        return _page("Too large", f"<p>The form is over {MAX_FORM_BYTES} bytes.</p>", 413)
    # The one-click body, or the page's button; any other body is still a click on a valid link
    # (a provider that sends it as multipart/form-data, say).
    form = parse_qs(body.decode("latin-1"))
    via = ONE_CLICK if form.get("List-Unsubscribe") == ["One-Click"] else PAGE
    try:
        await run_in_threadpool(_unsubscribe, token, via)
    except BadToken as exc:
        log.warning("unsubscribe.refused", reason=str(exc))
        return _bad_link()
    return _page("You are unsubscribed", "<p>You will receive no more emails from this sender.</p>")


routes = [
    Route(PATH, confirm_page, methods=["GET"]),
    Route(PATH, one_click, methods=["POST"]),
]
