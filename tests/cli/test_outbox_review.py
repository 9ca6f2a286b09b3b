"""`outreach outbox review|resolve`: rows left `unknown`, marked sent or sent again on purpose."""

from __future__ import annotations

import json

import pytest

from storage.models import OutboxMessage
from tests.cli.conftest import assert_refused, outreach


@pytest.fixture
def unknown_row(db, clock) -> OutboxMessage:
    """A log-channel message whose send died mid-way (its outcome is unknown)."""
    return OutboxMessage.create(
        idempotency_key="review:1",
        channel="log",
        recipient="+33612345678",
        body="hello",
        source="manual",
        status="unknown",
        attempts=1,
        last_error="the worker died mid-send",
        created_at=clock.now(),
        enqueued_at=clock.now(),
        claimed_at=clock.now(),
        finished_at=clock.now(),
    )


def status_of(row: OutboxMessage) -> str:
    return OutboxMessage.get_by_id(row.id).status


def test_review_lists_unknown_rows_with_the_recipient_masked(unknown_row, clock):
    OutboxMessage.create(
        idempotency_key="review:sent",
        channel="log",
        recipient="+33600000000",
        body="x",
        status="sent",
        created_at=clock.now(),
    )
    result = outreach("outbox", "review", "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["id"], row["key"], row["error"]) == (
        unknown_row.id,
        "review:1",
        "the worker died mid-send",
    )
    assert "12345678" not in row["recipient"]
    table = outreach("outbox", "review")
    assert table.exit_code == 0 and "review:1" in table.stdout


def test_mark_sent_records_who_and_why_and_sends_nothing(unknown_row, stub_broker):
    result = outreach(
        "outbox", "resolve", str(unknown_row.id), "--mark-sent", "--reason", "customer got it",
        "--by", "alice", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    row = OutboxMessage.get_by_id(unknown_row.id)
    assert row.status == "sent"
    assert row.last_error.startswith("mark-sent by alice: customer got it")
    assert row.attempts == 1  # nothing was sent again
    assert json.loads(result.stdout)["status"] == "sent"


def test_resend_sends_it_again_on_purpose(unknown_row):
    # When an operator resends it (embedded mode: this process delivers it)
    result = outreach(
        "outbox", "resolve", str(unknown_row.id), "--resend", "--reason", "never arrived",
        "--by", "bob",
    )  # fmt: skip
    # Then it was delivered again through the log channel
    assert result.exit_code == 0, result.output
    row = OutboxMessage.get_by_id(unknown_row.id)
    assert (row.status, row.attempts) == ("sent", 2)
    assert "resend by bob: never arrived" in row.last_error


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["999999", "--mark-sent", "--reason", "x"], "does not exist"),
        (["{id}", "--reason", "x"], "--mark-sent or --resend"),
        (["{id}", "--mark-sent", "--resend", "--reason", "x"], "--mark-sent or --resend"),
        (["{id}", "--mark-sent"], "reason"),
        (["{id}", "--mark-sent", "--reason", "x", "--by", " "], "who"),
        (["nine", "--mark-sent", "--reason", "x"], "not a valid integer"),
    ],
)
def test_bad_resolve_requests_change_nothing(unknown_row, args, fragment):
    args = [a.replace("{id}", str(unknown_row.id)) for a in args]
    assert_refused(outreach("outbox", "resolve", *args), fragment)
    assert status_of(unknown_row) == "unknown"


def test_a_row_that_is_not_unknown_cannot_be_resolved(unknown_row):
    OutboxMessage.update(status="sent").where(OutboxMessage.id == unknown_row.id).execute()
    result = outreach("outbox", "resolve", str(unknown_row.id), "--resend", "--reason", "x")
    assert_refused(result, "is sent, not unknown")
    assert status_of(unknown_row) == "sent"


def test_review_refuses_a_limit_below_one(db):
    assert_refused(outreach("outbox", "review", "--limit", "0"), "limit")
