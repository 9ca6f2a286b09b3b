"""Channel credits of a hunt: reserved when a message is queued, settled by its delivery.

available = allocated - reserved - consumed. Every change is one conditional UPDATE, so several
workers never reserve past the allocation, and a settlement happens once.
"""

from __future__ import annotations

from collections.abc import Mapping

from storage.db import database
from storage.errors import InvalidInput
from storage.models.hunts import HuntChannelCredit
from worker.hunts import sql
from worker.hunts.db import writing


def _row(hunt_id: int, channel: str) -> object:
    return (HuntChannelCredit.hunt == hunt_id) & (HuntChannelCredit.channel == channel)


def allocate(hunt_id: int, allocations: Mapping[str, int]) -> None:
    """Add credits per channel (creating the channel's row at first)."""
    for channel, amount in allocations.items():
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise InvalidInput(f"credits for {channel!r} must be a whole number, 0 or more")
    with writing():
        for channel, amount in allocations.items():
            HuntChannelCredit.insert(
                hunt=hunt_id, channel=channel, allocated=0, reserved=0, consumed=0
            ).on_conflict_ignore().execute()
            HuntChannelCredit.update(allocated=HuntChannelCredit.allocated + amount).where(
                _row(hunt_id, channel)
            ).execute()


def _available_sql(param: str) -> str:
    C = HuntChannelCredit
    columns = {
        f.name: f'"{f.column_name}"' for f in (C.channel, C.allocated, C.reserved, C.consumed)
    }
    return (
        f"SELECT {columns['channel']}, "
        f"{columns['allocated']} - {columns['reserved']} - {columns['consumed']} "
        f'FROM "{C._meta.table_name}" WHERE "{C.hunt.column_name}" = {param}'
    )


def available(hunt_id: int) -> dict[str, int]:
    """Credits still free per channel (a run's every start: written out, not built)."""
    cursor = database.execute_sql(_available_sql(str(database.obj.param)), [hunt_id])
    return {str(channel): max(0, int(free)) for channel, free in cursor.fetchall()}


def reserve(hunt_id: int, channel: str) -> bool:
    """Hold one credit for a message about to be queued; False when none is left."""
    C = HuntChannelCredit
    with writing():
        return bool(
            C.update(reserved=C.reserved + 1)
            .where(_row(hunt_id, channel) & (C.allocated - C.reserved - C.consumed > 0))
            .execute()
        )


def _reserve_sql(param: str) -> str:
    C = HuntChannelCredit
    table = f'"{C._meta.table_name}"'
    reserved = f'"{C.reserved.column_name}"'
    free = f'"{C.allocated.column_name}" - {reserved} - "{C.consumed.column_name}"'
    return (
        f"UPDATE {table} SET {reserved} = {reserved} + {param} "
        f'WHERE "{C.hunt.column_name}" = {param} AND "{C.channel.column_name}" = {param} '
        f"AND {free} >= {param}"
    )


def reserve_many(hunt_id: int, channel: str, wanted: int) -> int:
    """Hold up to `wanted` credits at once; returns how many (fewer when fewer are left).

    One conditional statement in the usual case (all of them, if that many are free). When
    refused, what is free now is held instead: a hunt's runs reserve only while holding its
    day's pacing counter (worker.hunts.page), so nothing else takes credits meanwhile, and
    the loop only repeats if some were freed in between.
    """
    C = HuntChannelCredit
    with writing():
        while wanted > 0:
            params = [wanted, hunt_id, channel, wanted]
            if database.execute_sql(_reserve_sql(str(database.obj.param)), params).rowcount:
                return wanted
            free = (
                C.select(C.allocated - C.reserved - C.consumed)
                .where(_row(hunt_id, channel))
                .scalar()
            )
            wanted = min(wanted, max(0, int(free or 0)))
    return 0


def consume(hunt_id: int, channel: str) -> bool:
    """The message went out: its reservation becomes a consumed credit."""
    C = HuntChannelCredit
    with writing():
        return bool(
            C.update(reserved=C.reserved - 1, consumed=C.consumed + 1)
            .where(_row(hunt_id, channel) & (C.reserved > 0))
            .execute()
        )


def release(hunt_id: int, channel: str) -> bool:
    """The message failed: its reserved credit is free again."""
    C = HuntChannelCredit
    with writing():
        return bool(
            C.update(reserved=C.reserved - 1)
            .where(_row(hunt_id, channel) & (C.reserved > 0))
            .execute()
        )


def settle(hunt_id: int, channel: str, *, used: int, freed: int) -> None:
    """Settle several reservations at once: `used` become consumed, `freed` are free again.

    One statement when the reservations are all there (the usual case); otherwise one at a
    time, each never taking `reserved` below zero, as :func:`consume` and :func:`release` do.
    """
    if not used + freed:
        return
    with writing():
        # The usual case, written out (every delivery window of a hunt's messages runs it).
        if sql.settle_credits(hunt_id, channel, used, freed):
            return
        for _ in range(used):
            consume(hunt_id, channel)
        for _ in range(freed):
            release(hunt_id, channel)
