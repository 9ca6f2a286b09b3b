"""The hunt's first message: a template with `{placeholders}` filled from the ad's fields.

A small renderer of its own, never ``str.format`` on user text (which would let a template reach
attributes such as ``{ad.__class__}``). Grammar: ``{name}``, ``{name|fallback}`` (used when the ad
has no value), ``{{`` and ``}}`` for literal braces. Names are case-insensitive; an unknown name is
refused when the hunt is created, not when the message is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from storage.errors import InvalidInput

# The ad fields a template may use.
PLACEHOLDERS = (
    "title",
    "price",
    "city",
    "postal_code",
    "category",
    "sub_type",
    "brand",
    "owner_name",
    "url",
    "source",
    "published_at",
)
# Longest template accepted (a first message, not a newsletter).
MAX_TEMPLATE_LENGTH = 2_000

_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_]+)(?:\|([^{}]*))?\}|[{}]")


@dataclass(frozen=True)
class Placeholder:
    name: str
    fallback: str


Part = str | Placeholder


def compile_template(text: str) -> tuple[Part, ...]:
    """Parse a template; raises InvalidInput naming the first problem."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("message template is empty")
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise InvalidInput(f"message template is longer than {MAX_TEMPLATE_LENGTH} characters")
    parts: list[Part] = []
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            parts.append(text[position : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif match.group(1) is None:
            raise InvalidInput(
                f"message template: unmatched {token!r} at character {match.start() + 1}"
                " (write {{ or }} for a literal brace)"
            )
        else:
            name = match.group(1).lower()
            if name not in PLACEHOLDERS:
                raise InvalidInput(
                    f"message template: unknown placeholder {{{match.group(1)}}}"
                    f" (known: {', '.join(PLACEHOLDERS)})"
                )
            parts.append(Placeholder(name, match.group(2) or ""))
        position = match.end()
    if position < len(text):
        parts.append(text[position:])
    return tuple(parts)


def render(parts: tuple[Part, ...], values: Mapping[str, object]) -> str:
    out: list[str] = []
    for part in parts:
        if isinstance(part, Placeholder):
            value = values.get(part.name)
            out.append(part.fallback if value is None or value == "" else str(value))
        else:
            out.append(part)
    return "".join(out)


def render_template(text: str, values: Mapping[str, object]) -> str:
    return render(compile_template(text), values)
