"""The hunt's message template: a small renderer of its own, strict when the hunt is created."""

from __future__ import annotations

import pytest

from storage.errors import InvalidInput
from worker.hunts.template import compile_template, render_template


def test_placeholders_are_filled_from_the_ad():
    body = render_template(
        "Bonjour {owner_name}, votre {title} à {price} €",
        {
            "owner_name": "Jean",
            "title": "Clio",
            "price": 8900,
        },
    )
    assert body == "Bonjour Jean, votre Clio à 8900 €"


def test_names_are_case_insensitive_and_a_fallback_covers_a_missing_value():
    body = render_template("Bonjour {Owner_Name|Madame, Monsieur} ({city})", {"owner_name": None})
    assert body == "Bonjour Madame, Monsieur ()"


def test_double_braces_are_literal_braces():
    assert render_template("{{title}} is {title}", {"title": "Clio"}) == "{title} is Clio"


def test_values_are_inserted_as_text_never_interpreted():
    # A value that looks like a placeholder or a format string stays as it is.
    body = render_template("{title}", {"title": "{owner_name} {0.__class__}"})
    assert body == "{owner_name} {0.__class__}"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {firstname}", "unknown placeholder {firstname}"),
        ("Hello {title.__class__}", "unmatched '{'"),
        ("Hello {0}", "unmatched '{'"),
        ("Price: 10 }", "unmatched '}'"),
        ("   ", "empty"),
        ("x" * 2001, "longer than"),
    ],
)
def test_bad_templates_are_refused_with_the_reason(template, expected):
    with pytest.raises(InvalidInput, match=expected.replace("{", r"\{").replace(".", r"\.")):
        compile_template(template)
