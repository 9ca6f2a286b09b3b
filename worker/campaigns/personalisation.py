"""Templates: `{Name}` (any letter case) is the only placeholder; everything else is literal.

Rendering is a regular-expression substitution with a function, never Python's format machinery:
a name like "{0}" or "\\1" is inserted as it is, and nothing in user text is ever interpreted.
"""

from __future__ import annotations

import re

from storage.errors import InvalidInput

# The one placeholder, in any letter case: {Name}, {name}, {NAME}...
NAME_PLACEHOLDER = re.compile(r"\{name\}", re.IGNORECASE)
# Anything between braces, to name the placeholder a template must not use.
_ANY_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
# Longest template body accepted (WhatsApp's own limit for a text message is 4,096).
MAX_TEMPLATE_LENGTH = 4096


def validate_template(body: str) -> str:
    """The body, checked: non-empty, and no braces other than {Name} placeholders."""
    if not body or not body.strip():
        raise InvalidInput("template is empty")
    if len(body) > MAX_TEMPLATE_LENGTH:
        raise InvalidInput(f"template is longer than {MAX_TEMPLATE_LENGTH} characters")
    for placeholder in _ANY_PLACEHOLDER.finditer(body):
        if not NAME_PLACEHOLDER.fullmatch(placeholder.group(0)):
            raise InvalidInput(
                f"template has an unknown placeholder {placeholder.group(0)} "
                "(only {Name} is supported)"
            )
    rest = NAME_PLACEHOLDER.sub("", body)
    for brace in ("{", "}"):
        if brace in rest:
            raise InvalidInput(
                f"template has an unmatched {brace!r} (only {{Name}} may appear in braces)"
            )
    return body


def name_for(first_name: str | None, default_name_value: str) -> str:
    """The contact's first name, trimmed; the campaign's default when that leaves nothing."""
    name = (first_name or "").strip()
    return name or default_name_value


def render(body: str, first_name: str | None, default_name_value: str) -> str:
    """The message a contact gets: every {Name} replaced, the rest untouched."""
    name = name_for(first_name, default_name_value)
    return NAME_PLACEHOLDER.sub(lambda _match: name, body)


def has_name_placeholder(body: str) -> bool:
    return NAME_PLACEHOLDER.search(body) is not None
