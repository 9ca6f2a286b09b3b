"""The rules that need no broker and no database: lifecycle, templates, batch arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.errors import InvalidInput, InvalidState
from worker.campaigns.batches import (
    address_for,
    chunk_size,
    idempotency_key,
    next_batch_time,
    validate_daily_send_limit,
)
from worker.campaigns.lifecycle import ALLOWED_FROM, Move, target
from worker.campaigns.outcomes import parse_key
from worker.campaigns.personalisation import render, validate_template

NINE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STATUSES = ("draft", "scheduled", "running", "paused", "completed", "cancelled", "failed")

# --- lifecycle -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("move", "current", "expected"),
    [
        (Move.SCHEDULE, "draft", "scheduled"),
        (Move.RUN, "draft", "running"),
        (Move.RUN, "scheduled", "running"),
        (Move.START, "scheduled", "running"),
        (Move.PAUSE, "scheduled", "paused"),
        (Move.PAUSE, "running", "paused"),
        (Move.CANCEL, "draft", "cancelled"),
        (Move.CANCEL, "paused", "cancelled"),
        (Move.COMPLETE, "running", "completed"),
        (Move.FAIL, "running", "failed"),
    ],
)
def test_allowed_moves_lead_to_their_status(move, current, expected):
    assert target(move, current) == expected


def test_resume_goes_back_to_running_or_to_waiting_for_the_first_batch():
    assert target(Move.RESUME, "paused", started=True) == "running"
    assert target(Move.RESUME, "paused", started=False) == "scheduled"


@pytest.mark.parametrize("current", ["running", "completed", "failed", "cancelled", "paused"])
def test_running_by_hand_is_refused_unless_draft_or_scheduled(current):
    # Seed 003's runManually: running, completed and failed campaigns are refused
    with pytest.raises(InvalidState, match=f"cannot run campaign 7: it is .*{current}"):
        target(Move.RUN, current, what="campaign 7")


@pytest.mark.parametrize("move", list(Move))
@pytest.mark.parametrize("current", STATUSES)
def test_every_move_outside_its_allowed_statuses_is_refused(move, current):
    if current in ALLOWED_FROM[move]:
        assert target(move, current, started=True) in STATUSES
    else:
        with pytest.raises(InvalidState):
            target(move, current)


def test_ended_campaigns_allow_no_move_at_all():
    for current in ("completed", "cancelled", "failed"):
        assert all(current not in allowed for allowed in ALLOWED_FROM.values())


# --- personalisation -------------------------------------------------------------------------


def test_name_in_any_letter_case_becomes_the_first_name_trimmed():
    body = "Hi {Name}! {name}, {NAME} and {nAmE}."
    assert render(body, "  Zoé ", "there") == "Hi Zoé! Zoé, Zoé and Zoé."


@pytest.mark.parametrize("first_name", [None, "", "   "])
def test_an_empty_first_name_uses_the_campaigns_default(first_name):
    assert render("Hello {Name}", first_name, "friend") == "Hello friend"


def test_user_text_is_never_interpreted():
    # A name that looks like a placeholder, a format field or a regex group stays literal
    assert render("Hi {Name}", "{Name} {0} \\1 %s", "x") == "Hi {Name} {0} \\1 %s"
    assert render("100% sure, {Name}", "Bo", "x") == "100% sure, Bo"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Hello {FirstName}", "unknown placeholder {FirstName}"),
        ("Hello {Name}, your code is {code}", "unknown placeholder {code}"),
        ("Hello {0}", "unknown placeholder {0}"),
        ("Hello { Name }", "unknown placeholder { Name }"),
        ("Hello {{Name}}", "unmatched"),
        ("Hello {Name", "unmatched"),
        ("Hello Name}", "unmatched"),
        ("   ", "template is empty"),
        ("x" * 5000, "longer than"),
    ],
)
def test_templates_with_anything_but_name_in_braces_are_refused(body, message):
    with pytest.raises(InvalidInput, match=message.replace("{", r"\{").replace("}", r"\}")):
        validate_template(body)


def test_a_template_without_placeholders_or_with_name_only_is_accepted():
    assert validate_template("Plain text") == "Plain text"
    assert validate_template("Hi {name} / {NAME}") == "Hi {name} / {NAME}"


# --- batch arithmetic ------------------------------------------------------------------------


def test_the_next_batch_is_24_hours_after_the_scheduled_time_not_after_now():
    # A tick that fires 4 minutes late does not push the next batch back
    assert next_batch_time(NINE, NINE + timedelta(minutes=4)) == NINE + timedelta(days=1)


def test_a_batch_that_ran_days_late_does_not_cause_a_catch_up_burst():
    # Ran 2 days and 3 hours late: the next slot still ahead, on the same time of day
    late = NINE + timedelta(days=2, hours=3)
    assert next_batch_time(NINE, late) == NINE + timedelta(days=3)
    # Exactly on a slot boundary: that slot has come, so the one after it
    assert next_batch_time(NINE, NINE + timedelta(days=1)) == NINE + timedelta(days=2)


@pytest.mark.parametrize(
    ("limit", "selected", "chunk", "expected"),
    [(5, 0, 200, 5), (5, 3, 200, 2), (5, 5, 200, 0), (5, 7, 200, 0), (500, 100, 200, 200)],
)
def test_a_chunk_never_takes_the_batch_past_its_limit(limit, selected, chunk, expected):
    assert chunk_size(limit, selected, chunk) == expected


@pytest.mark.parametrize("value", [0, -1, 100_001, 2.5, "5", True, None])
def test_a_daily_limit_must_be_a_positive_whole_number(value):
    with pytest.raises(InvalidInput, match="daily_send_limit"):
        validate_daily_send_limit(value)


def test_keys_and_addresses():
    assert idempotency_key(12, 345) == "campaign:12:contact:345"
    assert parse_key("campaign:12:contact:345") == (12, 345)
    assert parse_key("hunt:1:ad:2") is None
    assert address_for("email", "+33611", "a@b.fr") == "a@b.fr"
    assert address_for("email", "+33611", None) is None
    assert address_for("whatsapp", "+33611", "a@b.fr") == "+33611"
    assert address_for("whatsapp", None, "a@b.fr") is None
    assert address_for("log", None, "a@b.fr") == "a@b.fr"
