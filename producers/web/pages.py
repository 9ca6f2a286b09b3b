"""The console's pages: its templates, and how a page is rendered (the login's and the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from producers.web.security import Operator, csrf_token

PREFIX = "/console"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["prefix"] = PREFIX


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    operator: Operator | None = None,
    status: int = 200,
) -> Response:
    values = {
        "operator": operator,
        "csrf": csrf_token(request.session),
        "flash": request.session.pop("flash", None),
        **context,
    }
    return templates.TemplateResponse(request, name, values, status_code=status)
