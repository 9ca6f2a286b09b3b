"""What a person's text means: a stop word, an answer to the goodbye, or just words.

Plain rules over the catalogue (``worker/catalogue/inbound.<locale>.json``): each entry is a
comma-separated list, matched against the whole text, case and surrounding punctuation aside.
"""

from __future__ import annotations

from worker.engagement.answers import ANSWERS
from worker.engagement.catalogue import available_locales, text_for

STOP_WORDS_KEY = "inbound.stop_words"
ANSWER_KEY = "inbound.answer.{answer}"
STOP_CONFIRMATION_KEY = "inbound.stop_confirmation"
# Around a one-word reply people type these; they do not change what it means.
_TRIM = " \t\r\n.!?¡¿\"'«»*_~"


def _normalise(text: str) -> str:
    return " ".join(text.strip(_TRIM).casefold().split())


def _options(key: str, locale: str | None) -> set[str]:
    return {_normalise(word) for word in text_for(key, locale).split(",") if word.strip()}


def is_stop(text: str) -> bool:
    """A stop word of any locale: whoever writes STOP is heard, whatever their profile says."""
    wanted = _normalise(text)
    return any(wanted in _options(STOP_WORDS_KEY, locale) for locale in available_locales())


def goodbye_answer(text: str, locale: str | None) -> str | None:
    """The goodbye's option the text picks (by number or word, in the member's locale)."""
    wanted = _normalise(text)
    for answer in ANSWERS:
        if wanted in _options(ANSWER_KEY.format(answer=answer), locale):
            return answer
    return None


def stop_confirmation(locale: str | None) -> str:
    return text_for(STOP_CONFIRMATION_KEY, locale)
