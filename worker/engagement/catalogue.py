"""Message texts by key and locale, with a fallback locale.

The texts are package data: ``worker/catalogue/<domain>.<locale>.json``, each a flat object of
``"key": "text with {placeholders}"``. A user's locale is matched exactly, then by language
(``fr-CA`` reads ``fr``, ``pt`` reads ``pt-BR``), then falls back to :data:`FALLBACK_LOCALE`,
key by key, so a partly translated catalogue still renders.
"""

from __future__ import annotations

import json
import string
from functools import lru_cache
from importlib.resources import files
from typing import Any

from storage.errors import InvalidInput

FALLBACK_LOCALE = "en"
_SUFFIX = ".json"


def _catalogue_files() -> list[Any]:
    folder = files("worker") / "catalogue"
    return sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(_SUFFIX)),
        key=lambda entry: entry.name,
    )


def _locale_of(file_name: str) -> str:
    # "engagement.pt-BR.json" -> "pt-BR"
    return file_name.removesuffix(_SUFFIX).rsplit(".", 1)[-1]


@lru_cache(maxsize=1)
def _load() -> dict[str, dict[str, str]]:
    messages: dict[str, dict[str, str]] = {}
    for entry in _catalogue_files():
        data = json.loads(entry.read_text(encoding="utf-8"))
        messages.setdefault(_locale_of(entry.name), {}).update(data)
    return messages


def available_locales() -> list[str]:
    return sorted(_load())


def _normalise(locale: str) -> str:
    return locale.strip().replace("_", "-").lower()


def resolve_locale(requested: str | None) -> str:
    """The catalogue locale closest to `requested`; the fallback locale when none is close."""
    if not requested or not requested.strip():
        return FALLBACK_LOCALE
    known = {_normalise(locale): locale for locale in _load()}
    wanted = _normalise(requested)
    if wanted in known:
        return known[wanted]
    language = wanted.split("-", 1)[0]
    if language in known:
        return known[language]
    for normalised, locale in sorted(known.items()):
        if normalised.split("-", 1)[0] == language:
            return locale
    return FALLBACK_LOCALE


class _Strict(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        raise InvalidInput(f"message needs a value for {{{key}}}")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def text_for(key: str, locale: str | None) -> str:
    """The raw text of `key` in the closest locale that has it."""
    catalogue = _load()
    for candidate in (resolve_locale(locale), FALLBACK_LOCALE):
        text = catalogue.get(candidate, {}).get(key)
        if text is not None:
            return text
    raise InvalidInput(f"no message {key!r} in the catalogue")


def render(key: str, locale: str | None, **values: Any) -> str:
    """The text of `key` for `locale` with its placeholders filled in."""
    return text_for(key, locale).format_map(_Strict(values))
