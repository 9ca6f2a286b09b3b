"""Delayed messages kept in Redis until they are due, not in a worker's memory.

Dramatiq's Redis broker puts a delayed message on its queue's delay queue (``<queue>.DQ``): a
worker fetches it at once, holds it in memory until its time, then enqueues it on the queue and
acks it. That is three more round trips, and a body decoded and encoded again, for every delayed
message (every paced send is one), with thousands of them held by each worker.

Here a delayed message's body waits in the hash ``<queue>.delayed.msgs`` and its id in the sorted
set ``<queue>.delayed``, scored by its due time. The consumers of the queue move what is due
onto the queue before they fetch (one script call for every queue, at most every
MOVE_EVERY_SECONDS in a process), after which it is an ordinary message of its queue; the
process's idle consumers of the queues it filled are woken to fetch it (`Delays.filled`). What
is not kept: a Redis restart loses delayed messages as it loses delay queues (the relay enqueues
their rows again).

Delayed ids: a delivery put back until its row's time (every paced send is one) waits as the
row's id alone, in the sorted set ``<queue>.delayed.ids``, and the ids of a queue that come due
together leave as one message of the batching actor (up to its batch size each, which may differ
by queue). Each due row would otherwise cost a message of its own (its fetch, its ack, a claim
and an outcome statement), and rows of different senders that come due at the same moment could
never share one. An id added again waits for its latest time only: a row needs one delivery.

A sender's waiting rows: a delayed id that holds a slot of a paced sender is also kept in the
sorted set ``<queue>.delayed.slots.<sender id>``, scored by its slot (ids only: no address). A
send that starts late moves its sender's next waiting row later by as much (`move_later`), so
that the row comes due when its sender is quiet again instead of finding it busy and going
round the broker once more. Moves only ever make a row later; its sender's quiet time, checked
when it comes due, still decides. A flush of the queue leaves these sets to expire: a move
changes only ids that still wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import dramatiq
from dramatiq.common import current_millis

# The sorted set of a queue's delayed message ids, the hash of their bodies, and the sorted set
# of its delayed ids (the scripts below spell them out too).
DELAYED_SUFFIX = ".delayed"
BODIES_SUFFIX = ".delayed.msgs"
IDS_SUFFIX = ".delayed.ids"
SLOTS_SUFFIX = ".delayed.slots."
# How long a sender's set of slots outlives its last slot: its rows have gone by then, or the
# relay has them; a set left behind only costs memory until it expires.
SLOTS_KEPT_MS = 86_400_000
# Due messages moved onto a queue in one call at most (the rest move at the next fetch).
MOVE_AT_MOST = 1_000
# Delayed messages added in one script call at most, so that no call holds Redis for long.
ADD_AT_MOST = 500

# The keys are built in the scripts from the namespace, as Dramatiq's own scripts build theirs:
# a call then sends queue names, not four keys a queue (packing them cost more than the move).

# ARGV: the namespace, then (queue, message id, body, due time in ms) for each message.
_DELAY = """
local namespace = ARGV[1]
for i = 2, #ARGV, 4 do
    local key = namespace .. ":" .. ARGV[i]
    redis.call("hset", key .. ".delayed.msgs", ARGV[i + 1], ARGV[i + 2])
    redis.call("zadd", key .. ".delayed", ARGV[i + 3], ARGV[i + 1])
end
"""

# A process moves due messages at most this often (whichever of its consumers comes first):
# one script call for every queue, not one a fetch. Rows of many senders due in the same tenth
# of a second leave as one delivery message: with 1,000 senders paced at 1 a second, 0.1 s
# gave 879 to 900 sends a second, 0.05 s 844 to 870, 0.2 s 842 and 848, 0.025 s 702 and 718.
MOVE_EVERY_SECONDS = 0.1

# ARGV: the namespace, now (ms), how many a queue at most, the number of parts of a made
# message's body, those parts (text, then the name of the value that follows it: Q, IDS, MID,
# TS, then text...), then each queue and the ids a message made on it holds at most (0: its ids
# are not moved). Returns each queue given messages and how many: queue, count, queue...
_MOVE_DUE = """
local namespace, now, most, parts = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local filled = {}
local function made(name, ids, first, last, mid)
    local values = {Q = name, IDS = table.concat(ids, ",", first, last), MID = mid, TS = now}
    local body = {}
    for p = 5, 4 + parts do
        body[#body + 1] = ((p - 5) % 2 == 0) and ARGV[p] or values[ARGV[p]]
    end
    return table.concat(body)
end
for q = 5 + parts, #ARGV, 2 do
    local queue = namespace .. ":" .. ARGV[q]
    local per_message = tonumber(ARGV[q + 1])
    local delayed, bodies = queue .. ".delayed", queue .. ".delayed.msgs"
    local moved = 0
    local ids = redis.call("zrangebyscore", delayed, "-inf", now, "LIMIT", 0, most)
    for _, id in ipairs(ids) do
        local body = redis.call("hget", bodies, id)
        redis.call("zrem", delayed, id)
        if body then
            redis.call("hdel", bodies, id)
            redis.call("hset", queue .. ".msgs", id, body)
            redis.call("rpush", queue, id)
            moved = moved + 1
        end
    end
    if per_message > 0 then
        local waiting = queue .. ".delayed.ids"
        local due = redis.call("zrangebyscore", waiting, "-inf", now, "LIMIT", 0, most)
        if #due > 0 then
            redis.call("zrem", waiting, unpack(due))
        end
        for first = 1, #due, per_message do
            local last = math.min(first + per_message - 1, #due)
            -- A fresh id, as Dramatiq's own: the time and a count of the messages made.
            local n = redis.call("incr", namespace .. ":__delayed_ids_made__") % 1e12
            local mid = string.format("%08d-0000-4000-8000-%012d", now % 1e8, n)
            redis.call("hset", queue .. ".msgs", mid, made(ARGV[q], due, first, last, mid))
            redis.call("rpush", queue, mid)
            moved = moved + 1
        end
    end
    if moved > 0 then
        filled[#filled + 1] = ARGV[q]
        filled[#filled + 1] = moved
    end
end
return filled
"""

# ARGV: the namespace, the queue, then (sender id, slot, ms to add) for each move, slots in ms.
# Drops the sender's slots before `slot` (sent, or given up), then makes its next waiting row
# (the first slot after `slot`) due no sooner than that slot plus the ms to add: only later, and
# only if the row still waits. Returns how many rows were moved.
_MOVE_LATER = """
local prefix = ARGV[1] .. ":" .. ARGV[2]
local waiting = prefix .. ".delayed.ids"
local moved = 0
for i = 3, #ARGV, 3 do
    local slots = prefix .. ".delayed.slots." .. ARGV[i]
    local slot, add = ARGV[i + 1], tonumber(ARGV[i + 2])
    redis.call("zremrangebyscore", slots, "-inf", "(" .. slot)
    local after = "(" .. slot
    local row = redis.call("zrangebyscore", slots, after, "+inf", "WITHSCORES", "LIMIT", 0, 1)
    if #row > 0 then
        local due = string.format("%.0f", tonumber(row[2]) + add)
        moved = moved + redis.call("zadd", waiting, "XX", "GT", "CH", due, row[1])
    end
end
return moved
"""

# The placeholders of a made message's body, as the script names their values.
_PLACEHOLDERS = {'"@IDS@"': "IDS", '"@TS@"': "TS", "@Q@": "Q", "@MID@": "MID"}


def body_parts(actor_name: str) -> list[str]:
    """A message of `actor_name` with one list of ids as its argument, as the moving script
    writes it: text, the name of a value, text... (Dramatiq's encoder, placeholders split
    out). ValueError when the encoder does not write text the script can fill in (JSON)."""
    template = dramatiq.Message(
        queue_name="@Q@",
        actor_name=actor_name,
        args=(["@IDS@"],),
        kwargs={},
        options={"redis_message_id": "@MID@"},
        message_id="@MID@",
        message_timestamp="@TS@",  # type: ignore[arg-type]  # the script writes a number there
    ).encode()
    try:
        parts = _split(template.decode())
        values = {"Q": "q", "IDS": "1,2", "MID": "m", "TS": "0"}
        made = "".join(values[part] if n % 2 else part for n, part in enumerate(parts))
        readable = dramatiq.Message.decode(made.encode()).args == ([1, 2],)
    except Exception:
        readable = False
    if not readable:
        raise ValueError(f"cannot write {actor_name} messages with this encoder: {template!r}")
    return parts


def _split(text: str) -> list[str]:
    """Text, the name of the placeholder's value, text..."""
    parts: list[str] = []
    while found := [(text.find(p), p) for p in _PLACEHOLDERS if p in text]:
        at, placeholder = min(found)
        parts += [text[:at], _PLACEHOLDERS[placeholder]]
        text = text[at + len(placeholder) :]
    parts.append(text)
    return parts


class Delays:
    """A broker's delayed messages (its Redis client and namespace)."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._delay = client.register_script(_DELAY)
        self._move_due = client.register_script(_MOVE_DUE)
        self._move_later = client.register_script(_MOVE_LATER)
        self._moved_at = 0.0
        self._moving = threading.Lock()
        # How this process writes the messages of delayed ids (none: it leaves them waiting),
        # and how many ids such a message holds at most, by queue.
        self._ids_per_message = 0
        self._ids_per_message_on: dict[str, int] = {}
        self._body_parts: list[str] = []
        self._filled: dict[str, threading.Event] = {}

    def keys(self, queue_name: str) -> tuple[str, str, str]:
        """The sorted set and the bodies of `queue_name`'s delayed messages, and the sorted set
        of its delayed ids."""
        key = f"{self.namespace}:{queue_name}"
        return key + DELAYED_SUFFIX, key + BODIES_SUFFIX, key + IDS_SUFFIX

    def move_ids_as(
        self, actor_name: str, per_message: int, on: Mapping[str, int] | None = None
    ) -> None:
        """Due ids leave as messages of `actor_name`, up to `per_message` ids each (on the
        queues named in `on`, up to the number given there), its one argument the list of them
        (until this is called, a process moves none)."""
        self._body_parts = body_parts(actor_name)
        self._ids_per_message = per_message
        self._ids_per_message_on = dict(on or {})

    def add_ids(
        self,
        due: Mapping[str, Sequence[tuple[int, int]]],
        slots: Mapping[tuple[str, int], Sequence[tuple[int, int]]] | None = None,
        slots_kept_ms: int = SLOTS_KEPT_MS,
    ) -> None:
        """Per queue, (id, due time in ms) each; and per (queue, sender id), the slot (in ms)
        each of those ids holds, kept with the sender's other slots for `slots_kept_ms` more
        (from now: the caller adds how far ahead its last slot is). One round trip."""
        pipe = self.client.pipeline(transaction=False)
        for queue, ids in due.items():
            if ids:
                pipe.zadd(self.keys(queue)[2], {str(int(i)): due_ms for i, due_ms in ids})
        for (queue, sender_id), held in (slots or {}).items():
            if held:
                key = self.slots_key(queue, sender_id)
                pipe.zadd(key, {str(int(i)): slot_ms for i, slot_ms in held})
                pipe.pexpire(key, slots_kept_ms)
        if len(pipe):
            pipe.execute()

    def slots_key(self, queue_name: str, sender_id: int) -> str:
        """The sorted set of the slots a sender's delayed ids on the queue hold."""
        return f"{self.namespace}:{queue_name}{SLOTS_SUFFIX}{int(sender_id)}"

    def move_later(self, queue_name: str, moves: Sequence[tuple[int, int, int]]) -> int:
        """(sender id, slot in ms, ms to add) each: the sender's next waiting row after that
        slot is due no sooner than its own slot plus the ms to add (only later); one script
        call. How many rows were moved."""
        if not moves:
            return 0
        args: list[Any] = [self.namespace, queue_name]
        for sender_id, slot_ms, add_ms in moves:
            args += [int(sender_id), int(slot_ms), int(add_ms)]
        return int(self._move_later(args=args))

    def add(self, queue_name: str, redis_id: str, body: bytes, due_ms: int) -> None:
        self.add_many([(queue_name, redis_id, body, due_ms)])

    def add_many(self, delayed: Sequence[tuple[str, str, bytes, int]]) -> None:
        """(queue, Redis id, body, due time in ms) each: one round trip for all of them, a
        script call for each ADD_AT_MOST."""
        chunks = [delayed[i : i + ADD_AT_MOST] for i in range(0, len(delayed), ADD_AT_MOST)]
        pipe = self.client.pipeline(transaction=False) if len(chunks) > 1 else None
        for chunk in chunks:
            args = [self.namespace, *(part for one in chunk for part in one)]
            self._delay(args=args, client=pipe)
        if pipe is not None:
            pipe.execute()

    def move_due(self, queue_names: Iterable[str], now_ms: int) -> int:
        """Put each queue's due messages on it, and wake this process's consumers of the
        queues given some (filled); how many there were."""
        names = list(queue_names)
        if not names:
            return 0
        parts = self._body_parts
        args: list[Any] = [self.namespace, now_ms, MOVE_AT_MOST, len(parts), *parts]
        for name in names:
            per_message = self._ids_per_message_on.get(name, self._ids_per_message)
            args += [name, per_message]
        given = self._move_due(args=args)
        for name in given[::2]:
            self.filled(name.decode() if isinstance(name, bytes) else name).set()
        return sum(int(count) for count in given[1::2])

    def filled(self, queue_name: str) -> threading.Event:
        """Set when this process moves messages onto the queue: its idle consumer fetches at
        once instead of waiting out its polling backoff."""
        event = self._filled.get(queue_name)
        if event is None:
            event = self._filled.setdefault(queue_name, threading.Event())
        return event

    def move_due_now_and_then(self, queue_names: Callable[[], Iterable[str]]) -> None:
        """move_due, unless this process did within MOVE_EVERY_SECONDS or is doing it now."""
        now = time.monotonic()
        if now - self._moved_at < MOVE_EVERY_SECONDS or not self._moving.acquire(blocking=False):
            return
        try:
            self._moved_at = now
            self.move_due(queue_names(), current_millis())
        finally:
            self._moving.release()

    def count(self, queue_name: str) -> int:
        """How many of the queue's messages and ids wait for their time."""
        delayed, _, ids = self.keys(queue_name)
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(delayed)
        pipe.zcard(ids)
        return sum(int(n) for n in pipe.execute())

    def forget(self, queue_name: str) -> None:
        """Drop the queue's delayed messages and ids (a flush of the queue)."""
        self.client.delete(*self.keys(queue_name))
