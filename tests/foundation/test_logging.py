"""Every log line is JSON with the message's context, and personal data is masked (invariant 6)."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, date, datetime, time

import dramatiq
import pytest

from worker.logging import configure_logging, get_logger
from worker.masking import mask


@pytest.fixture
def log_stream():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", stream)
    yield stream
    root.handlers, level = saved
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("call +33 6 12 34 56 78 now", "12 34 56"),
        ("call 0612345678", "0612345678"),
        ("call 0612345678.", "0612345678"),
        ("br +5511987654321", "5511987654321"),
        ("fr 06.12.34.56.78", "12.34.56"),
        ("us 415.555.2671", "555.2671"),
        ("jid 33612345678@c.us", "33612345678"),
        ("mail jane.doe@example.com", "jane.doe"),
    ],
)
def test_mask_hides_phone_numbers_and_emails(text, hidden):
    assert hidden not in mask(text)


def test_mask_leaves_ordinary_numbers_alone():
    assert mask("batch 12 of campaign 345, 2026-03-02") == "batch 12 of campaign 345, 2026-03-02"


@pytest.mark.parametrize(
    "text",
    [
        "took 12.345678 s",
        "at 48.8566137, 2.3522219",
        "amount 12345678.90 or 12345678,90",
        "ratio 0.12345678",
        "pi 3.14159265358979",
        "load 1.23456789e10",
        "version 1.2.3456789",
        "version 10.20.30.40",
        "from 192.168.100.200",
        "redis 192.168.100.200:6379",
        "mask 255.255.255.0",
        "on 2026.03.02 and 02.03.2026",
        "sha 1234567890abcdef",
    ],
)
def test_mask_leaves_decimals_versions_and_addresses_alone(text):
    # Given a log text with long numbers that are not phones: nothing is hidden
    assert mask(text) == text


def test_a_phone_next_to_a_decimal_is_masked_and_the_decimal_kept():
    assert mask("+33 6 12 34 56 78 took 12.345678 s") == "+***78 took 12.345678 s"


def test_structlog_lines_are_json_and_masked(log_stream):
    get_logger("test").info("contacting", recipient="+33612345678", email="a.b@example.org")
    [line] = lines(log_stream)
    assert line["event"] == "contacting"
    assert "+33612345678" not in json.dumps(line)
    assert line["email"] == "a***@example.org"


def test_dramatiq_own_lines_carry_the_message_context(log_stream, stub_broker, stub_worker):
    # Given an actor that fails once, so dramatiq's retries middleware logs about it
    @dramatiq.actor(max_retries=0, log_context=("outbox_id",))
    def failing(outbox_id: int) -> None:
        raise RuntimeError("boom")

    message = failing.send(42)
    stub_broker.join(failing.queue_name, fail_fast=False)
    stub_worker.join()
    # Then dramatiq's own warning is a JSON line with the message id, actor and business id
    own = [line for line in lines(log_stream) if line.get("logger", "").startswith("dramatiq")]
    retries = [line for line in own if "Retries exceeded" in line["event"]]
    assert retries, own
    assert retries[0]["message_id"] == message.message_id
    assert retries[0]["actor"] == "failing"
    assert retries[0]["outbox_id"] == 42


def test_dates_in_a_line_are_iso_8601_never_python_reprs(log_stream):
    # Given a line carrying datetimes, a date and a time, some nested
    when = datetime(2026, 12, 4, 12, 36, 58, 123456, tzinfo=UTC)
    get_logger("test").info(
        "dated", started_at=when, day=date(2026, 12, 4), at=time(9, 30), batches=[{"at": when}]
    )
    # Then each is its ISO 8601 text
    [line] = lines(log_stream)
    assert line["started_at"] == "2026-12-04T12:36:58.123456+00:00"
    assert line["day"] == "2026-12-04"
    assert line["at"] == "09:30:00"
    assert line["batches"] == [{"at": "2026-12-04T12:36:58.123456+00:00"}]
    assert "datetime.datetime(" not in log_stream.getvalue()


def test_the_console_format_renders_lines_for_a_person(stub_broker):
    # Given logs configured for a terminal (OUTREACH_LOG_FORMAT=console)
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", stream, log_format="console")
    try:
        get_logger("test").info("contacting", recipient="+33612345678", at=date(2026, 12, 4))
    finally:
        root.handlers, level = saved
        root.setLevel(level)
    # Then the line is text, not JSON, still masked, its date in ISO form
    text = stream.getvalue()
    assert "contacting" in text and not text.lstrip().startswith("{")
    assert "+33612345678" not in text
    assert "2026-12-04" in text


def test_an_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="log format must be one of json, console"):
        configure_logging("INFO", io.StringIO(), log_format="xml")
