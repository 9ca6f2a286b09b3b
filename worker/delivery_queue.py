"""Putting outbox rows' deliveries on the broker.

The delivery actor is found by its name on the broker, not imported: the outbox, the delivery
and pacing enqueue deliveries, and the actors (``worker.actors``, which import every kind of
work) sit above all three. ``worker.actors.delivery`` declares the actor under this name.
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq

from worker.enqueue import enqueue_many

# The actor that delivers a group of outbox rows (worker.actors.delivery).
DELIVER_GROUP_ACTOR = "deliver_outbox_messages"
# Outbox ids per delivery message: one message (and one claim per window, see
# worker.delivery) for many sends, where a message per send would cost more than the send.
DELIVERY_GROUP = 50


def delivery_actor() -> dramatiq.Actor:
    """The declared delivery actor (ActorNotFound before ``worker.actors`` is imported)."""
    actor: dramatiq.Actor = dramatiq.get_broker().get_actor(DELIVER_GROUP_ACTOR)
    return actor


def enqueue_delivery(outbox_id: int) -> None:
    enqueue_deliveries([outbox_id])


def enqueue_deliveries(outbox_ids: Sequence[int]) -> None:
    """One delivery message per group of up to DELIVERY_GROUP ids, in one Redis round trip."""
    ids = [int(outbox_id) for outbox_id in outbox_ids]
    if not ids:
        return
    actor = delivery_actor()
    enqueue_many(
        actor.message(ids[first : first + DELIVERY_GROUP])
        for first in range(0, len(ids), DELIVERY_GROUP)
    )


def enqueue_deliveries_later(outbox_ids: Sequence[int], delay_ms: int | None) -> None:
    """As :func:`enqueue_deliveries`, each message delayed by `delay_ms` (None: not delayed)."""
    ids = [int(outbox_id) for outbox_id in outbox_ids]
    if not ids:
        return
    actor = delivery_actor()
    for first in range(0, len(ids), DELIVERY_GROUP):
        actor.send_with_options(args=(ids[first : first + DELIVERY_GROUP],), delay=delay_ms)


def first_backoff_ms() -> int:
    """How long the delivery actor waits before its first retry."""
    return int(delivery_actor().options["min_backoff"])
