"""The goodbye comes from a message catalogue by key and locale, with a fallback locale."""

from __future__ import annotations

import pytest

from storage.errors import InvalidInput
from worker.engagement import catalogue
from worker.engagement.process import GOODBYE_MESSAGE_KEY


def test_english_french_and_brazilian_portuguese_are_shipped():
    assert {"en", "fr", "pt-BR"} <= set(catalogue.available_locales())


@pytest.mark.parametrize(
    ("requested", "resolved"),
    [
        ("fr", "fr"),
        ("fr-CA", "fr"),
        ("pt-BR", "pt-BR"),
        ("pt_br", "pt-BR"),
        ("pt", "pt-BR"),
        ("de", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_a_locale_is_matched_exactly_then_by_language_then_falls_back(requested, resolved):
    assert catalogue.resolve_locale(requested) == resolved


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("en", "Hi Ana, we haven't seen you for 14 days"),
        ("fr", "Bonjour Ana, cela fait 14 jours"),
        ("pt-BR", "Oi Ana, faz 14 dias"),
        ("de", "Hi Ana, we haven't seen you for 14 days"),
    ],
)
def test_the_goodbye_renders_in_the_users_language(locale, expected):
    text = catalogue.render(GOODBYE_MESSAGE_KEY, locale, name="Ana", days=14)
    assert text.startswith(expected)


@pytest.mark.parametrize("locale", ["en", "fr", "pt-BR"])
def test_the_goodbye_offers_the_three_choices(locale):
    # come back, remind me later, stop: the answers the other transitions depend on
    text = catalogue.render(GOODBYE_MESSAGE_KEY, locale, name="Ana", days=14)
    assert all(f"\n{choice}. " in text for choice in (1, 2, 3))


def test_every_locale_has_the_same_keys_and_placeholders_as_the_fallback():
    messages = catalogue._load()
    fallback = messages[catalogue.FALLBACK_LOCALE]
    for locale, texts in messages.items():
        assert texts.keys() == fallback.keys(), locale
        for key, text in texts.items():
            assert catalogue.placeholders(text) == catalogue.placeholders(fallback[key]), (
                locale,
                key,
            )


def test_an_unknown_key_or_a_missing_value_is_a_clear_error():
    with pytest.raises(InvalidInput, match=r"no message 'engagement\.nope'"):
        catalogue.render("engagement.nope", "en")
    with pytest.raises(InvalidInput, match=r"needs a value for \{days\}"):
        catalogue.render(GOODBYE_MESSAGE_KEY, "en", name="Ana")
