"""Putting outbox rows' deliveries on the broker, each account's on its own lane.

Fair shares between accounts: deliveries are spread over a few Dramatiq queues, the lanes. An
account's deliveries always go on lane ``account_id % DELIVERY_LANES`` (``delivery.lane3``); a
message of no account goes on the default queue, ``delivery``. The stock ``dramatiq`` runner
consumes every declared queue, and a worker process puts what each queue's consumer fetched on
one work queue in the order it was fetched; a consumer fetches again only as its own messages
are done. So a lane holding a huge backlog has at most its prefetch of messages waiting ahead of
another lane's in each worker process, and the lanes take turns from there on
(docs/operating.md, "Fair shares").

Only the queue changes with the lane: the actor is the same (``deliver_outbox_messages``), its
retries go back on the lane the message was on (Dramatiq retries a message on its own queue),
and a dead-lettered one sits in its lane's dead-letter set, requeued onto that lane.

Rows put back until their slot on a paced sender are the exception: their deliveries wait on one
queue of their own, ``delivery.paced``, whatever their account, and go in the order their slots
come (the round-robin of ready senders). A sender's slots come no faster than its spacing, so an
account takes that queue's turns in proportion to its ready senders, and a huge campaign's
backlog waits for its later slots rather than ahead of other accounts' rows; and the rows of
many accounts due in the same tenth of a second share a message, where spread over the lanes
each would be a message of a few rows, fetched by a consumer polling its lane.

The delivery actor is found by its name on the broker, not imported: the outbox, the delivery
and pacing enqueue deliveries, and the actors (``worker.actors``, which import every kind of
work) sit above all three. ``worker.actors.delivery`` declares the actor under this name, and
the lanes with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import dramatiq
from dramatiq.common import current_millis

from storage import clock
from worker.enqueue import enqueue_many
from worker.redis_broker import OutreachRedisBroker
from worker.redis_delays import SLOTS_KEPT_MS

# The actor that delivers a group of outbox rows (worker.actors.delivery).
DELIVER_GROUP_ACTOR = "deliver_outbox_messages"
# Outbox ids per delivery message: one message (and one claim per window, see
# worker.delivery) for many sends, where a message per send would cost more than the send.
DELIVERY_GROUP = 50
# The queue of deliveries of no account (and the delivery actors' own queue).
DELIVERY_QUEUE = "delivery"
# Lanes that accounts' deliveries are spread over: accounts on different lanes take turns.
DELIVERY_LANES = 8
# The queue of rows put back until their slot on a paced sender, of every account.
PACED_QUEUE = f"{DELIVERY_QUEUE}.paced"
# Outbox ids per message of rows due on PACED_QUEUE: smaller than a group, so the rows due
# together are sent by several threads at once rather than one after another by one, each
# later than its slot (with 1,000 senders at 1 a second, 12 and 20 measured alike).
PACED_GROUP = 12
# Every queue a delivery can be on: the default one, the lanes, then the paced queue.
DELIVERY_QUEUES = (
    DELIVERY_QUEUE,
    *(f"{DELIVERY_QUEUE}.lane{n}" for n in range(DELIVERY_LANES)),
    PACED_QUEUE,
)


def lane_of(account_id: int | None) -> str:
    """The queue an account's deliveries go on (the default queue for no account)."""
    if account_id is None:
        return DELIVERY_QUEUE
    return DELIVERY_QUEUES[1 + int(account_id) % DELIVERY_LANES]


def declare_lanes(broker: dramatiq.Broker) -> None:
    """Declare every lane on the broker, so that its workers consume them; on the project's
    Redis broker, deliveries put back for later wait as their rows' ids, and those due together
    on a lane leave as one message (worker.redis_delays), of up to PACED_GROUP ids on the paced
    queue."""
    for name in DELIVERY_QUEUES:
        broker.declare_queue(name)
    if isinstance(broker, OutreachRedisBroker):
        broker.delays.move_ids_as(DELIVER_GROUP_ACTOR, DELIVERY_GROUP, {PACED_QUEUE: PACED_GROUP})


def delivery_actor() -> dramatiq.Actor:
    """The declared delivery actor (ActorNotFound before ``worker.actors`` is imported)."""
    actor: dramatiq.Actor = dramatiq.get_broker().get_actor(DELIVER_GROUP_ACTOR)
    return actor


def _messages(outbox_ids: Sequence[int], queue: str) -> Iterable[dramatiq.Message]:
    """One message per group of up to DELIVERY_GROUP ids, on `queue` (a lane, the default
    queue or the paced one)."""
    actor = delivery_actor()
    ids = [int(outbox_id) for outbox_id in outbox_ids]
    for first in range(0, len(ids), DELIVERY_GROUP):
        message = actor.message(ids[first : first + DELIVERY_GROUP])
        yield message if queue == message.queue_name else message.copy(queue_name=queue)


def enqueue_delivery(outbox_id: int, *, account_id: int | None) -> None:
    enqueue_deliveries([outbox_id], account_id=account_id)


def enqueue_deliveries(outbox_ids: Sequence[int], *, account_id: int | None) -> None:
    """The rows of one account (None: of no account), as groups of up to DELIVERY_GROUP ids on
    its lane, in one Redis round trip."""
    if outbox_ids:
        enqueue_many(_messages(outbox_ids, lane_of(account_id)))


def enqueue_rows(rows: Iterable[tuple[int, int | None]]) -> None:
    """Rows of any accounts, as (outbox id, account id): grouped by account (a group's rows are
    always of one account), each account's on its lane, in one Redis round trip."""
    by_account: dict[int | None, list[int]] = {}
    for outbox_id, account_id in rows:
        by_account.setdefault(account_id, []).append(int(outbox_id))
    enqueue_many(
        message
        for account_id, ids in by_account.items()
        for message in _messages(ids, lane_of(account_id))
    )


def enqueue_deliveries_later(
    outbox_ids: Sequence[int], delay_ms: int | None, *, account_id: int | None
) -> None:
    """As :func:`enqueue_deliveries`, each message delayed by `delay_ms` (None: not delayed)."""
    enqueue_many_later([(outbox_ids, delay_ms, account_id)])


def enqueue_many_later(deliveries: Iterable[tuple[Sequence[int], int | None, int | None]]) -> None:
    """(outbox ids, delay in ms or None, account id) each, as by
    :func:`enqueue_deliveries_later`, in one round trip (:func:`enqueue_later_on`)."""
    enqueue_later_on([(ids, delay_ms, lane_of(account)) for ids, delay_ms, account in deliveries])


def enqueue_later_on(
    deliveries: Iterable[tuple[Sequence[int], int | None, str]],
    held: Sequence[tuple[int, int, int]] = (),
) -> None:
    """(outbox ids, delay in ms or None, queue: a lane or PACED_QUEUE) each. On the project's
    Redis broker the delayed ones wait as ids on their queues, all in one round trip, and leave
    in groups of the rows due together (``declare_lanes``), whoever put them back. `held`:
    (sender id, outbox id, slot in ms of the injected clock) of rows among them that wait on
    PACED_QUEUE for a slot of their sender, kept with their sender's other slots
    (move_next_rows_later)."""
    broker = dramatiq.get_broker()
    if not isinstance(broker, OutreachRedisBroker):
        for outbox_ids, delay_ms, queue in deliveries:
            for message in _messages(outbox_ids, queue):
                broker.enqueue(message, delay=delay_ms)
        return
    now = current_millis()
    waiting: dict[str, list[tuple[int, int]]] = {}
    for outbox_ids, delay_ms, queue in deliveries:
        if not delay_ms:
            enqueue_many(_messages(outbox_ids, queue))
            continue
        due = waiting.setdefault(queue, [])
        due += [(int(outbox_id), now + delay_ms) for outbox_id in outbox_ids]
    slots: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for sender_id, outbox_id, slot_ms in held:
        slots.setdefault((PACED_QUEUE, sender_id), []).append((outbox_id, slot_ms))
    # Kept until a day after the last slot, at the latest.
    ahead = max((slot_ms for _, _, slot_ms in held), default=0) - clock_millis()
    broker.delays.add_ids(waiting, slots, SLOTS_KEPT_MS + max(0, ahead))


def move_next_rows_later(moves: Iterable[tuple[int, int, int]]) -> None:
    """(sender id, slot in ms of the injected clock, ms) each: a send of the sender, on that
    slot, started that much later than the slot allowed for. Its next row waiting on
    PACED_QUEUE comes due no sooner than its own slot plus as much, rather than find its sender
    busy and be put back again (worker.redis_delays, "A sender's waiting rows"). Only on the
    project's Redis broker, in one round trip."""
    broker = dramatiq.get_broker()
    if not isinstance(broker, OutreachRedisBroker):
        return
    # Due times in Redis are wall-clock ms; slots are the injected clock's.
    offset = current_millis() - clock_millis()
    later = [(sender_id, slot_ms, ms + offset) for sender_id, slot_ms, ms in moves]
    broker.delays.move_later(PACED_QUEUE, later)


def clock_millis(when: datetime | None = None) -> int:
    """`when` (the injected clock's now by default) in ms since the epoch."""
    return int((when or clock.now()).timestamp() * 1000)


def first_backoff_ms() -> int:
    """How long the delivery actor waits before its first retry."""
    return int(delivery_actor().options["min_backoff"])


def prefetch_of(threads: int) -> int:
    """Messages a worker process fetches ahead per queue, as Dramatiq works it out (its
    ``dramatiq_queue_prefetch`` variable, else twice the threads)."""
    from dramatiq import worker

    return worker.QUEUE_PREFETCH or min(threads * 2, 65535)


def sends_ahead_at_most(processes: int, threads: int) -> int:
    """The fair-shares rule as a number: the sends of one busy lane that can go out before the
    last send of a group of another lane, when both were waiting as the workers fetched them
    (docs/operating.md, "Fair shares").

    In the worker process that fetched the group: at most its prefetch of the busy lane's
    messages were fetched before it, and at most `threads - 1` more start beside it, each of up
    to DELIVERY_GROUP sends; every other process works at the same pace meanwhile.
    """
    return processes * (prefetch_of(threads) + threads - 1) * DELIVERY_GROUP
