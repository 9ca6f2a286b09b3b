"""The outbox's per-message statements, written as SQL text, behave as the model would.

They run on both backends (the `db` fixture), so each scenario here runs on SQLite and on
PostgreSQL with the same expectations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import peewee
import pytest

from storage import db as storage_db
from storage.db import database
from storage.models import OutboxMessage
from worker import delivery, outbox_sql
from worker.channels import Media, Outbound
from worker.delivery import Outcome, deliver
from worker.outbox import queue_message


class CountingChannel:
    name = "log"
    deduplicates = False

    def __init__(self) -> None:
        self.sent: list[Outbound] = []

    def send(self, message: Outbound) -> str:
        self.sent.append(message)
        return f"provider-{len(self.sent)}"


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> CountingChannel:
    counting = CountingChannel()
    monkeypatch.setattr(delivery, "get_channel", lambda name, settings=None: counting)
    return counting


FIELDS = [f.name for f in OutboxMessage._meta.sorted_fields]


def as_read_by_the_model(outbox_id: int) -> dict[str, object]:
    row = OutboxMessage.get_by_id(outbox_id)
    return {name: getattr(row, name) for name in FIELDS}


def as_returned(row: OutboxMessage) -> dict[str, object]:
    return {name: getattr(row, name) for name in FIELDS}


def test_a_queued_row_is_written_and_returned_as_the_model_reads_it(db, clock):
    # When a message with media is queued
    row = queue_message(
        "k-shape",
        "whatsapp",
        "  +33612345678  ",
        "Bonjour, voici l'annonce",
        media=Media("https://example.com/a.jpg", "image/jpeg"),
        source="hunt",
    )
    # Then what came back from the insert is exactly the stored row
    assert as_returned(row) == as_read_by_the_model(row.id)
    # And it holds what was asked, with the defaults of a new claim
    assert row.recipient == "+33612345678"
    assert (row.media_url, row.media_mime) == ("https://example.com/a.jpg", "image/jpeg")
    assert (row.status, row.attempts, row.source) == ("queued", 0, "hunt")
    assert row.created_at == row.enqueued_at == clock.now()
    assert row.claimed_at is None and row.finished_at is None


def test_the_claim_takes_a_queued_row_once_and_reads_it_back(db, clock):
    row = queue_message("k-claim", "log", "+33612345678", "hello")
    # When two claims are made for the same row
    first = outbox_sql.claim_queued([row.id], clock.now(), ["log"])
    second = outbox_sql.claim_queued([row.id], clock.now(), ["log"])
    # Then the first one has it, as stored, and the second gets nothing
    assert list(first) == [row.id] and second == {}
    claim = first[row.id]
    assert as_returned(claim) == as_read_by_the_model(row.id)
    assert (claim.status, claim.attempts, claim.claimed_at) == ("sending", 1, clock.now())


def test_a_window_claims_only_its_queued_rows_on_working_channels(db, clock):
    # Given queued rows, one already sent, one on a channel that cannot send
    rows = [queue_message(f"k-window-{n}", "log", "+33612345678", "hello") for n in range(4)]
    email = queue_message("k-window-email", "email", "jane.doe@example.com", "hello")
    OutboxMessage.update(status="sent").where(OutboxMessage.id == rows[1].id).execute()
    ids = [r.id for r in rows] + [email.id]
    # When the window is claimed in one statement
    claimed = outbox_sql.claim_queued(ids, clock.now(), ["log", "webhook"])
    # Then it holds exactly the queued rows on a working channel, each as stored
    assert sorted(claimed) == sorted([rows[0].id, rows[2].id, rows[3].id])
    for outbox_id, claim in claimed.items():
        assert as_returned(claim) == as_read_by_the_model(outbox_id)
        assert (claim.status, claim.attempts) == ("sending", 1)
    assert OutboxMessage.get_by_id(email.id).status == "queued"


def test_the_claim_leaves_a_row_on_a_channel_that_cannot_send(db, clock):
    row = queue_message("k-email", "email", "jane.doe@example.com", "hello")
    # When the claim is made for the working channels only, and email is not one of them
    assert outbox_sql.claim_queued([row.id], clock.now(), ["log", "webhook"]) == {}
    assert outbox_sql.claim_queued([row.id], clock.now(), []) == {}
    # Then the row is untouched
    assert (OutboxMessage.get_by_id(row.id).status, OutboxMessage.get_by_id(row.id).attempts) == (
        "queued",
        0,
    )


def test_the_outcome_is_recorded_only_for_the_claim_that_holds_the_row(db, clock):
    row = queue_message("k-finish", "log", "+33612345678", "hello")
    claim = outbox_sql.claim_queued([row.id], clock.now(), ["log"])[row.id]
    sent = outbox_sql.ClaimOutcome(row.id, claim.attempts, "sent", provider_message_id="p-1")
    stale = outbox_sql.ClaimOutcome(row.id, claim.attempts - 1, "sent", provider_message_id="p-0")
    # A stale claim (an earlier attempt) changes nothing
    assert outbox_sql.finish_claimed([stale], clock.now(), returning=True) == []
    # The current claim records the outcome and reads the final row back
    (final,) = outbox_sql.finish_claimed([sent], clock.now(), returning=True)
    assert as_returned(final) == as_read_by_the_model(row.id)
    assert (final.status, final.provider_message_id, final.finished_at) == (
        "sent",
        "p-1",
        clock.now(),
    )
    # And a second report of the same outcome finds the row no longer sending
    assert outbox_sql.finish_claimed([sent], clock.now(), returning=True) == []


def test_a_window_s_outcomes_are_recorded_row_by_row_in_one_statement(db, clock):
    # Given a window of three claimed rows
    rows = [queue_message(f"k-outcomes-{n}", "log", "+33612345678", "hello") for n in range(3)]
    claimed = outbox_sql.claim_queued([r.id for r in rows], clock.now(), ["log"])
    a, b, c = (claimed[r.id] for r in rows)
    # When one was sent, one refused and one is unknown
    outcomes = [
        outbox_sql.ClaimOutcome(a.id, a.attempts, "sent", provider_message_id="p-a"),
        outbox_sql.ClaimOutcome(b.id, b.attempts, "failed", error="refused"),
        outbox_sql.ClaimOutcome(c.id, c.attempts, "unknown", error="no answer"),
    ]
    finished = outbox_sql.finish_claimed(outcomes, clock.now(), returning=True)
    # Then each row holds its own outcome, as the model reads it
    assert sorted(r.id for r in finished) == sorted([a.id, b.id, c.id])
    for row in finished:
        assert as_returned(row) == as_read_by_the_model(row.id)
    stored = {r.id: OutboxMessage.get_by_id(r.id) for r in rows}
    assert (stored[a.id].status, stored[a.id].provider_message_id) == ("sent", "p-a")
    assert (stored[b.id].status, stored[b.id].last_error) == ("failed", "refused")
    assert (stored[c.id].status, stored[c.id].last_error) == ("unknown", "no answer")


def test_claims_given_back_are_queued_again_keeping_their_last_error(db, clock):
    rows = [queue_message(f"k-back-{n}", "log", "+33612345678", "hello") for n in range(3)]
    OutboxMessage.update(last_error="earlier").where(OutboxMessage.id == rows[1].id).execute()
    claimed = outbox_sql.claim_queued([r.id for r in rows], clock.now(), ["log"])
    clock.advance(timedelta(seconds=5))
    # When one claim goes back with an error, one without, and one with a stale attempt
    back = [
        (rows[0].id, claimed[rows[0].id].attempts, "HTTP 503"),
        (rows[1].id, claimed[rows[1].id].attempts, None),
        (rows[2].id, claimed[rows[2].id].attempts - 1, None),
    ]
    assert outbox_sql.requeue_claimed(back, clock.now()) == 2
    # Then the two held claims are queued again (the error kept when none is given)
    first, second, third = (OutboxMessage.get_by_id(r.id) for r in rows)
    assert (first.status, first.last_error, first.enqueued_at) == (
        "queued",
        "HTTP 503",
        clock.now(),
    )
    assert (second.status, second.last_error) == ("queued", "earlier")
    assert third.status == "sending"


def test_concurrent_deliveries_of_many_rows_send_each_row_once(db, clock, channel):
    # Given rows, each delivered by four threads at once
    rows = [queue_message(f"k-many-{n}", "log", "+33612345678", "hello") for n in range(10)]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def run() -> None:
        with database.connection_context():
            barrier.wait()
            for row in rows:
                outcome = deliver(row.id)
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then each row was sent exactly once and recorded sent
    assert sorted(m.idempotency_key for m in channel.sent) == sorted(
        r.idempotency_key for r in rows
    )
    assert outcomes.count(Outcome.SENT) == len(rows)
    assert {OutboxMessage.get_by_id(r.id).status for r in rows} == {"sent"}


def test_a_row_queued_again_by_a_transient_error_is_claimed_by_the_next_attempt(db, clock, channel):
    # Given a row whose first send failed for a while and went back to queued
    row = queue_message("k-again", "log", "+33612345678", "hello")
    assert row.id in outbox_sql.claim_queued([row.id], clock.now(), ["log"])
    OutboxMessage.update(status="queued").where(OutboxMessage.id == row.id).execute()
    clock.advance(timedelta(seconds=30))
    # When the retry delivers it
    assert deliver(row.id) is Outcome.SENT
    # Then it is the second attempt, and it was sent once
    after = OutboxMessage.get_by_id(row.id)
    assert (after.status, after.attempts) == ("sent", 2)
    assert len(channel.sent) == 1


# --- the PostgreSQL pool's check-out ------------------------------------------------------------


def _terminate(pid: int) -> None:
    """Cut one server connection from another, as a server restart or a proxy would."""
    killer = peewee.PostgresqlDatabase(None)
    killer.init(database.obj.database, **database.obj.connect_params)
    with killer.connection_context():
        killer.execute_sql("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # waits for it


def _backend_pid() -> int:
    return int(database.execute_sql("SELECT pg_backend_pid()").fetchone()[0])


def _as_a_message(work: Callable[[], object]) -> object:
    """Run `work` the way a worker thread runs a message: borrow a connection, give it back.

    In a thread of its own, so the test's own connection is left alone.
    """
    result: list[object] = []

    def run() -> None:
        database.connect()
        try:
            result.append(work())
        except Exception as exc:
            result.append(exc)
        finally:
            database.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0]


def test_a_pooled_connection_in_use_moments_ago_is_handed_out_again(pg_db):
    # Given a message that used a connection and gave it back
    pid = _as_a_message(_backend_pid)
    # When the next message borrows one at once
    # Then it is the same server connection
    assert _as_a_message(_backend_pid) == pid


def test_a_dropped_connection_idle_for_a_while_is_replaced_at_check_out(pg_db, monkeypatch):
    # Given a pooled connection that the server dropped while it sat idle past the window
    monkeypatch.setattr(storage_db, "POOL_PING_AFTER_IDLE_SECONDS", 0.0)
    pid = _as_a_message(_backend_pid)
    assert isinstance(pid, int)
    _terminate(pid)
    # When the next message borrows it, the check-out sees it is gone and gives a working one
    again = _as_a_message(_backend_pid)
    assert isinstance(again, int) and again != pid


def test_a_dropped_connection_handed_out_fails_once_and_is_not_reused(pg_db):
    # Given a connection dropped by the server right after a message gave it back
    pid = _as_a_message(_backend_pid)
    assert isinstance(pid, int)
    _terminate(pid)
    # When the next message borrows it at once (no ping), its first statement fails
    assert isinstance(_as_a_message(_backend_pid), peewee.OperationalError)
    # Then it was not given back to the pool: the message after that gets a working connection
    again = _as_a_message(_backend_pid)
    assert isinstance(again, int) and again != pid


def _recorded(monkeypatch: pytest.MonkeyPatch, call: Callable[[], object]) -> tuple[str, list]:
    """The statement `call` sent to the database (the last one), and its parameters."""
    sent: list[tuple[str, list]] = []
    backend = database.obj
    real = backend.execute_sql

    def recording(sql, params=None, *args, **kwargs):
        sent.append((sql, list(params or [])))
        return real(sql, params, *args, **kwargs)

    monkeypatch.setattr(backend, "execute_sql", recording)
    call()
    monkeypatch.undo()
    return sent[-1]


# Plan nodes that read no index of the outbox: a bitmap's heap visit, a VALUES list.
NOT_READS = ("Bitmap Heap Scan", "Values Scan")


def _indexes_read(sql: str, params: list) -> set[str]:
    """The indexes PostgreSQL's plan of the statement reads the outbox with (not run)."""
    (plan,) = database.execute_sql("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
    found: set[str] = set()
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        read = node.get("Index Name", node.get("Relation Name", ""))
        scan = node["Node Type"].endswith("Scan") and node["Node Type"] not in NOT_READS
        if scan and not read.startswith("suppression"):  # the suppression check's own
            found.add(node.get("Index Name", node["Node Type"]))
        nodes += node.get("Plans", [])
    return found


def test_a_window_finds_its_rows_by_primary_key_whatever_the_statistics_say(
    pg_db, clock, monkeypatch
):
    # Given statistics taken when no row was queued, then a campaign's 3,000 rows queued
    from worker.outbox import Outgoing, queue_messages

    queue_messages([Outgoing(f"k-old-{n}", "log", f"+3361{n:07d}", "hi") for n in range(200)])
    OutboxMessage.update(status="sent").execute()
    database.execute_sql("ANALYZE outbox_message")
    rows = queue_messages(
        [Outgoing(f"k-new-{n}", "log", f"+3362{n:07d}", "hi") for n in range(3_000)]
    )
    window = [r.id for r in rows[1_000:1_020]]
    # When a window of 20 is claimed, then recorded, and a window given back
    claim = _recorded(monkeypatch, lambda: outbox_sql.claim_queued(window, clock.now(), ["log"]))
    outcomes = [outbox_sql.ClaimOutcome(i, 1, "sent") for i in window[:10]]
    finish = _recorded(
        monkeypatch, lambda: outbox_sql.finish_claimed(outcomes, clock.now(), returning=False)
    )
    later = clock.now() + timedelta(minutes=1)
    deferrals = [(i, 1, later, None) for i in window[10:]]
    defer = _recorded(monkeypatch, lambda: outbox_sql.defer_claimed(deferrals))
    # Then each statement finds its rows by their primary key, never by status or channel
    # (which would read every queued row: the statistics say there are none)
    for sql, params in (claim, finish, defer):
        assert _indexes_read(sql, params) == {"outbox_message_pkey"}, sql
    assert OutboxMessage.select().where(OutboxMessage.status == "sent").count() == 210
