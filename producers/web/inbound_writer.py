"""Group commit for inbound events: the requests of a few milliseconds stored in one statement.

A request is answered only once its event is committed (WAHA retries anything else), but a
commit and a Redis round trip are paid once per batch, not once per request. A few batches
are written at a time: the requests that come in while every writer is busy wait for the next
free one, which takes them all, so batches grow with the load and a lone request is written at
once, with no timer to wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from storage.db import database
from worker.inbound import events
from worker.inbound.events import Identity
from worker.logging import get_logger

log = get_logger("outreach.web")

# Events per statement: a few hundred rows keep one INSERT well within SQLite's 32,766
# parameters (six a row) and a commit short.
MAX_BATCH = 500
# Batches written at once: a second writer fills the round trips' waits of the first.
MAX_WRITERS = 2


@dataclass
class _Waiting:
    identity: Identity
    payload: str
    answer: asyncio.Future[bool] = field(repr=False)

    @property
    def key(self) -> str:
        """The event's external id as stored (two copies of one event share it)."""
        return self.identity.external_id[: events.EXTERNAL_ID_MAX]


def store_and_enqueue(provider: str, batch: Sequence[tuple[Identity, str]]) -> dict[str, int]:
    """Store the batch in one transaction, then enqueue what was new in one round trip.

    Returns the new ids by external id. Stored is what matters: should the enqueue fail, the
    relay enqueues those events again later (worker.inbound.relay).
    """
    from worker.actors.inbound import handle_inbound_event
    from worker.enqueue import enqueue_calls

    with database.connection_context(), database.atomic():
        stored = events.record_many(provider, batch)
    if stored:
        try:
            enqueue_calls(handle_inbound_event, [(event_id,) for event_id in stored.values()])
        except Exception as exc:
            ids = sorted(stored.values())
            log.error("inbound.enqueue_failed", event_ids=ids, error=str(exc), exc_info=True)
    return stored


class InboundWriter:
    """Collects verified events from the requests of one process and writes them in batches."""

    def __init__(
        self,
        provider: str,
        write: Callable[[str, Sequence[tuple[Identity, str]]], dict[str, int]] = store_and_enqueue,
        max_batch: int = MAX_BATCH,
        max_writers: int = MAX_WRITERS,
    ) -> None:
        self.provider = provider
        self._write = write
        self._max_batch = max_batch
        self._max_writers = max_writers
        self._waiting: list[_Waiting] = []
        self._writers = 0
        # The running writers' tasks, kept from the garbage collector.
        self._tasks: set[asyncio.Task[None]] = set()

    async def store(self, identity: Identity, payload: str) -> bool:
        """Whether the event was new; returns once it is committed (raises if the write failed)."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(identity, payload, answer))
        if self._writers < self._max_writers:
            self._start_writer()
        return await answer

    def _start_writer(self) -> None:
        self._writers += 1
        task = asyncio.create_task(self._write_all())
        self._tasks.add(task)
        task.add_done_callback(self._writer_done)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        # Counted down here, however the task ended (even cancelled before its first step).
        self._tasks.discard(task)
        self._writers -= 1
        # A request may have come in after this writer's last look but before this callback,
        # seeing no room for a writer of its own: it is taken now.
        if self._waiting and self._writers < self._max_writers:
            self._start_writer()

    async def _write_all(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            try:
                await self._write_batch(batch)
            except BaseException as exc:
                # Cancelled (the process stops) or worse: no request of the batch waits forever.
                _fail(batch, exc if isinstance(exc, Exception) else ConnectionAbortedError())
                raise

    async def _write_batch(self, batch: list[_Waiting]) -> None:
        # A retry of an event can arrive while its first copy waits: the first one is written.
        firsts: dict[str, _Waiting] = {}
        for item in batch:
            firsts.setdefault(item.key, item)
        try:
            stored = await self._write_items(list(firsts.values()))
        except Exception as exc:
            if len(firsts) == 1:
                log.error("inbound.store_failed", events=1, error=str(exc), exc_info=True)
                _fail(batch, exc)
                return
            # One event the database refuses must not fail the others: each is written alone.
            log.warning("inbound.batch_failed", events=len(firsts), error=str(exc))
            stored = {}
            for external_id, item in firsts.items():
                try:
                    stored.update(await self._write_items([item]))
                except Exception as alone:
                    log.error("inbound.store_failed", events=1, error=str(alone), exc_info=True)
                    _fail([item], alone)
                    _fail([twin for twin in batch if twin.key == external_id], alone)
        for external_id, item in firsts.items():
            if not item.answer.done():
                item.answer.set_result(external_id in stored)
        for item in batch:
            if not item.answer.done():
                item.answer.set_result(False)

    async def _write_items(self, items: list[_Waiting]) -> dict[str, int]:
        return await run_in_threadpool(
            self._write, self.provider, [(item.identity, item.payload) for item in items]
        )


def _fail(items: list[_Waiting], exc: BaseException) -> None:
    for item in items:
        if not item.answer.done():
            item.answer.set_exception(exc)
