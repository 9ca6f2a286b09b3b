"""Inbound events stored in batches: one statement for the requests of a few milliseconds, each
event still stored once, each request answered only once its event is committed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from producers.web.inbound_writer import InboundWriter, store_and_enqueue
from storage.db import database
from storage.models.consent import RECEIVED, WAHA, InboundEvent
from worker.inbound.events import Identity, parse_waha, record, record_many

from . import waha


def _event(n: int) -> tuple[Identity, str]:
    return parse_waha(waha.message(waha.MEMBER_JID, f"hello {n}", message_id=f"false_{n}"))


def test_a_batch_is_stored_once_per_event_in_one_statement(db):
    # Given an event stored before, and a batch holding it, two new events and a twin of one
    first, second, third = _event(1), _event(2), _event(3)
    earlier = record(WAHA, *first)
    # When the batch is stored
    stored = record_many(WAHA, [first, second, third, second])
    # Then only the two new events are stored, once each, and their ids are given back
    rows = {row.external_id: row for row in InboundEvent.select()}
    assert len(rows) == 3
    assert stored == {
        second[0].external_id: rows[second[0].external_id].id,
        third[0].external_id: rows[third[0].external_id].id,
    }
    assert rows[first[0].external_id].id == earlier
    assert {row.status for row in rows.values()} == {RECEIVED}
    assert record_many(WAHA, []) == {}


def _run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_share_batches_and_each_event_is_new_once(db, stub_broker):
    # Given a writer on the real store, and 120 requests at once: 100 events, 20 of them twice
    batches: list[int] = []

    def counting_store(provider: str, batch: Sequence[tuple[Identity, str]]) -> dict[str, int]:
        batches.append(len(batch))
        return store_and_enqueue(provider, batch)

    writer = InboundWriter(WAHA, counting_store)
    events = [_event(n) for n in range(100)] + [_event(n) for n in range(20)]

    async def post_all() -> list[bool]:
        return list(await asyncio.gather(*(writer.store(*event) for event in events)))

    # When every request waits for its answer
    answers = _run(post_all())
    # Then each of the 100 events was new exactly once, and its twin was told it was known
    assert sum(answers) == 100
    assert answers[100:] == [False] * 20
    assert InboundEvent.select().count() == 100
    # And the requests were written in far fewer statements than requests
    assert sum(batches) == 100
    assert len(batches) < 10
    # And every stored event was handed to the worker once
    assert stub_broker.queues["inbound"].qsize() == 100


def test_when_the_database_is_away_every_request_fails_and_its_retry_is_stored(db):
    # Given a store that fails while the database is away
    away = True

    def store(provider: str, batch: Sequence[tuple[Identity, str]]) -> dict[str, int]:
        if away:
            raise ConnectionError("database went away")
        with database.connection_context():
            return record_many(provider, batch)

    writer = InboundWriter(WAHA, store)

    async def post(events: list[tuple[Identity, str]]) -> list[bool | BaseException]:
        return list(
            await asyncio.gather(
                *(writer.store(*event) for event in events), return_exceptions=True
            )
        )

    # When three requests come in
    failed = _run(post([_event(n) for n in range(3)]))
    # Then each of them fails (WAHA will post it again), and nothing is stored
    assert all(isinstance(answer, ConnectionError) for answer in failed)
    assert InboundEvent.select().count() == 0
    # And when the database is back and WAHA posts them again, they are stored
    away = False
    assert _run(post([_event(n) for n in range(3)])) == [True, True, True]
    assert InboundEvent.select().count() == 3


def test_an_event_the_database_refuses_fails_alone_not_its_whole_batch(db):
    # Given a store that refuses any statement holding one particular event
    poison = _event(13)

    def store(provider: str, batch: Sequence[tuple[Identity, str]]) -> dict[str, int]:
        if any(identity == poison[0] for identity, _ in batch):
            raise ValueError("value refused by the database")
        with database.connection_context():
            return record_many(provider, batch)

    writer = InboundWriter(WAHA, store)
    events = [_event(n) for n in range(10, 16)] + [poison]

    async def post() -> list[bool | BaseException]:
        return list(
            await asyncio.gather(
                *(writer.store(*event) for event in events), return_exceptions=True
            )
        )

    # When it comes in among others (and a copy of it too)
    answers = _run(post())
    # Then only its requests fail; every other event is stored once and told so
    assert [isinstance(a, ValueError) for a in answers] == [n == 13 for n in range(10, 16)] + [True]
    assert [a for a in answers if not isinstance(a, ValueError)] == [True] * 5
    assert InboundEvent.select().count() == 5


def test_a_cancelled_writer_leaves_no_request_waiting_and_the_next_ones_are_written(sqlite_db):
    # Given a writer whose first batch is cancelled while it is being written (the process stops)
    started = threading.Event()
    release = threading.Event()

    def store(provider: str, batch: Sequence[tuple[Identity, str]]) -> dict[str, int]:
        started.set()
        release.wait(5)
        with database.connection_context():
            return record_many(provider, batch)

    writer = InboundWriter(WAHA, store, max_writers=1)

    async def scenario() -> tuple[list[bool | BaseException], bool]:
        first = [asyncio.ensure_future(writer.store(*_event(n))) for n in range(3)]
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        for task in list(writer._tasks):
            task.cancel()
        release.set()
        answers = list(await asyncio.gather(*first, return_exceptions=True))
        # When a request comes in afterwards
        later = await asyncio.wait_for(writer.store(*_event(99)), timeout=5)
        return answers, later

    answers, later = _run(scenario())
    # Then the requests of the cancelled batch were answered with an error, not left waiting
    assert all(isinstance(answer, Exception) for answer in answers)
    # And the writer still writes what comes next
    assert later is True


@pytest.mark.parametrize("max_batch", [1, 7])
def test_no_batch_is_larger_than_its_limit(sqlite_db, max_batch):
    # Given a writer whose batches hold at most `max_batch` events
    sizes: list[int] = []
    lock = threading.Lock()

    def store(provider: str, batch: Sequence[tuple[Identity, str]]) -> dict[str, int]:
        with lock:
            sizes.append(len(batch))
        with database.connection_context():
            return record_many(provider, batch)

    writer = InboundWriter(WAHA, store, max_batch=max_batch)

    async def post_all() -> list[bool]:
        return list(await asyncio.gather(*(writer.store(*_event(n)) for n in range(30))))

    # When 30 requests come at once
    assert _run(post_all()) == [True] * 30
    # Then every event was written, in batches no larger than the limit
    assert sum(sizes) == 30
    assert max(sizes) <= max_batch


def test_a_request_whose_batch_could_not_be_written_is_answered_503_and_stored_on_its_retry(
    sqlite_db, stub_broker
):
    import httpx

    from producers.web.app import create_app
    from storage.settings import Settings

    # Given the web app with a webhook key, and a database whose inbound table is gone
    app = create_app(Settings(waha_webhook_key=waha.KEY))
    body = waha.message(waha.MEMBER_JID, "STOP", message_id="false_503")

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            return await client.post("/inbound/waha", content=body, headers=waha.headers(body))

    database.execute_sql('ALTER TABLE "inbound_event" RENAME TO "inbound_event_away"')
    # When WAHA posts an event
    refused = _run(post())
    # Then it is told to try again, and nothing was enqueued
    assert refused.status_code == 503
    assert refused.json() == {"error": "not stored, try again"}
    assert stub_broker.queues.get("inbound") is None or stub_broker.queues["inbound"].empty()
    # And when the database is back and WAHA posts it again, it is stored and enqueued once
    database.execute_sql('ALTER TABLE "inbound_event_away" RENAME TO "inbound_event"')
    accepted = _run(post())
    assert (accepted.status_code, accepted.json()) == (200, {"stored": True})
    assert InboundEvent.select().count() == 1
    assert stub_broker.queues["inbound"].qsize() == 1


@pytest.mark.parametrize("max_writers", [1, 2])
def test_no_more_batches_are_written_at_once_than_the_writers_allowed(sqlite_db, max_writers):
    # Given a store that takes a while, and counts the batches being written at once
    in_flight = 0
    most = 0
    lock = threading.Lock()

    def slow_store(provider: str, batch: Sequence[tuple[Identity, str]]) -> dict[str, int]:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            time.sleep(0.02)
            with database.connection_context():
                return record_many(provider, batch)
        finally:
            with lock:
                in_flight -= 1

    writer = InboundWriter(WAHA, slow_store, max_batch=4, max_writers=max_writers)

    async def post_in_waves() -> list[bool]:
        answers: list[bool] = []
        for wave in range(5):
            first = wave * 10
            answers += await asyncio.gather(
                *(writer.store(*_event(n)) for n in range(first, first + 10))
            )
        return answers

    # When requests come in waves, more than one batch's worth at a time
    assert _run(post_in_waves()) == [True] * 50
    # Then every event is stored, and never more than the allowed batches were written at once
    assert InboundEvent.select().count() == 50
    assert most == max_writers
