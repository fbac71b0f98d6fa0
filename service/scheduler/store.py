"""The schedule in Redis: future events by fire instant, claimed and enqueued atomically.

Keys (``ns`` is the store's namespace, ``hearth`` by default):

    {ns}:due              sorted set: event id -> fire instant (ms since the epoch, UTC)
    {ns}:events           hash: event id -> the encoded Dramatiq message, ready to enqueue
    {ns}:meta             hash: event id -> "<deadline ms> <couple>"; past the deadline an
                          event is recorded as missed, never sent
    {ns}:couple:{couple}  sorted set: the couple's event ids by fire instant, so an edit can
                          drop its pending ones; claimed ids linger there until ``add``
                          prunes entries older than a day, which keeps the claim free of
                          per-couple writes
    {ns}:fired            sorted set: event id -> when it was enqueued or recorded as missed;
                          entries older than ``FIRED_TTL_S`` are pruned by the claim
    {ns}:missed           list: event ids the claim found past their deadline, until the
                          scheduler has recorded them (``missed`` / ``forget_missed``): a
                          database error or a crash between the two loses none

``claim_due`` is one Lua script: it takes a batch of due events, pushes the messages of those
still within their deadline onto the Dramatiq queue exactly as ``RedisBroker.enqueue`` would
(``HSET {dq}:{queue}.msgs`` + ``RPUSH {dq}:{queue}``), records the others as missed, removes
the batch from the schedule and marks it fired, all in one atomic step and with one bulk
command per key rather than one per event. Two schedulers calling it at once can never both
enqueue an event, and a scheduler that dies mid-tick loses nothing: the script ran whole or
not at all. ``add`` refuses events marked fired, so re-planning after a restart cannot
schedule an event again. The worker's unique key in the SQL prompt log is the last guard.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["Claimed", "ScheduleStore", "ScheduledEvent"]

# How long a fired marker outlives its event: longer than any re-plan reaches back.
FIRED_TTL_S = 14 * 24 * 3600
# A couple's index forgets claimed events this long after they fired.
INDEX_KEEP = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ScheduledEvent:
    """One future event: a Dramatiq message for ``actor`` to enqueue at ``fire_at``."""

    event_id: str
    couple: str
    fire_at: datetime  # aware
    deadline: datetime  # aware; later than this it is recorded as missed, never sent
    actor: str
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claimed:
    enqueued: int
    missed: list[str]


class ScheduleStore:
    """Future events in Redis, and the atomic claim that turns due ones into queued messages."""

    def __init__(
        self,
        redis: Redis,
        *,
        queue: str = "default",
        namespace: str = "hearth",
        dramatiq_namespace: str = "dramatiq",
    ) -> None:
        self._redis = redis
        self._ns = namespace
        self._queue = queue
        self._dq = dramatiq_namespace
        self._add = redis.register_script(_ADD)
        self._claim = redis.register_script(_CLAIM)
        self._drop = redis.register_script(_DROP)
        self._miss = redis.register_script(_MISS)

    def add(self, events: Iterable[ScheduledEvent], now: datetime | None = None) -> int:
        """Schedule events (idempotent per event id); returns how many were new or moved.

        Events already fired are skipped, so planning the same window twice is harmless.
        With ``now``, the index of each couple touched forgets events that fired more than
        ``INDEX_KEEP`` before it (claimed long ago; the claim leaves them there).
        """
        cutoff = _ms(now - INDEX_KEEP) if now is not None else -1
        args: list[str | int] = [cutoff]
        count = 0
        total = 0
        for event in events:
            args += [
                event.event_id,
                _ms(event.fire_at),
                _ms(event.deadline),
                event.couple,
                self._message(event),
            ]
            count += 1
            if count == 500:  # keep each script call short; Redis runs one script at a time
                total += int(self._add(keys=[self._ns], args=args))
                args, count = [cutoff], 0
        if count:
            total += int(self._add(keys=[self._ns], args=args))
        return total

    def claim_due(self, now: datetime, limit: int = 1000) -> Claimed:
        """Enqueue up to ``limit`` events due at ``now``; those past their deadline are missed."""
        result = self._claim(
            keys=[self._ns, f"{self._dq}:{self._queue}"],
            args=[_ms(now), limit, FIRED_TTL_S * 1000],
        )
        enqueued, missed = result
        return Claimed(int(enqueued), [m.decode() if isinstance(m, bytes) else m for m in missed])

    def miss(self, event_ids: Sequence[str], now: datetime) -> int:
        """Record events that will never be claimed (they fell due before the scheduler's
        catch-up reaches back) as missed: listed in ``{ns}:missed`` and marked fired, unless
        fired already; returns how many were new."""
        total = 0
        for first in range(0, len(event_ids), 1000):
            chunk = list(event_ids[first : first + 1000])
            total += int(self._miss(keys=[self._ns], args=[_ms(now), *chunk]))
        return total

    def drop_couple(
        self, couple: str, keep: Sequence[str] = (), *, after: datetime | None = None
    ) -> int:
        """Remove the couple's pending events except ``keep`` (and, with ``after``, except
        those due by then); returns how many were removed."""
        since = _ms(after) if after is not None else -1
        return int(self._drop(keys=[self._ns], args=[couple, since, *keep]))

    def pending(self, couple: str | None = None) -> list[tuple[str, datetime]]:
        """Pending event ids with their fire instants, soonest first; for one couple, a read
        of its index only (a re-plan asks), not of the whole schedule."""
        if couple is None:
            rows = cast(
                "list[tuple[bytes, float]]",
                self._redis.zrange(f"{self._ns}:due", 0, -1, withscores=True),
            )
            return [(_text(m), datetime.fromtimestamp(score / 1000, UTC)) for m, score in rows]
        raw = cast("list[bytes]", self._redis.zrange(f"{self._ns}:couple:{couple}", 0, -1))
        index = [_text(m) for m in raw]
        if not index:
            return []
        # The index keeps claimed ids for a day: only those still in the due set are pending.
        scores = self._redis.zmscore(f"{self._ns}:due", index)
        return [
            (m, datetime.fromtimestamp(score / 1000, UTC))
            for m, score in zip(index, scores, strict=True)
            if score is not None
        ]

    def missed(self, limit: int = 1000) -> list[str]:
        """Up to ``limit`` event ids the claim found past their deadline, oldest first."""
        raw = cast("list[bytes]", self._redis.lrange(f"{self._ns}:missed", 0, limit - 1))
        return [_text(m) for m in raw]

    def forget_missed(self, event_ids: Sequence[str]) -> None:
        """Forget missed event ids once they are recorded (each occurrence of each id)."""
        with self._redis.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.lrem(f"{self._ns}:missed", 0, event_id)
            pipe.execute()

    def next_due(self) -> datetime | None:
        """The soonest fire instant, or None when nothing is scheduled."""
        rows = cast(
            "list[tuple[bytes, float]]",
            self._redis.zrange(f"{self._ns}:due", 0, 0, withscores=True),
        )
        return datetime.fromtimestamp(rows[0][1] / 1000, UTC) if rows else None

    def _message(self, event: ScheduledEvent) -> str:
        # Exactly what dramatiq.Message.encode() produces for RedisBroker.enqueue, built once
        # at planning time so the claim script only has to move bytes.
        message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "hearth:" + event.event_id))
        return json.dumps(
            {
                "queue_name": self._queue,
                "actor_name": event.actor,
                "args": [],
                "kwargs": event.kwargs,
                # The event id is unique and fires once, so it serves as the message's key in
                # Dramatiq's queue hash; the claim script then never has to decode JSON.
                "options": {"redis_message_id": event.event_id},
                "message_id": message_id,
                "message_timestamp": _ms(event.fire_at),
            },
            separators=(",", ":"),
        )


def _ms(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError("the schedule takes aware datetimes")
    return round(instant.timestamp() * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# KEYS[1] = namespace; ARGV = index cutoff ms (-1: no pruning), then
# (event id, fire ms, deadline ms, couple, message)*
_ADD = """
local ns = KEYS[1]
local cutoff = tonumber(ARGV[1])
local changed, pruned = 0, {}
for i = 2, #ARGV, 5 do
    local id, fire, couple = ARGV[i], ARGV[i + 1], ARGV[i + 3]
    if not redis.call('zscore', ns .. ':fired', id) then
        local index = ns .. ':couple:' .. couple
        if cutoff >= 0 and not pruned[couple] then
            redis.call('zremrangebyscore', index, '-inf', '(' .. cutoff)
            pruned[couple] = true
        end
        changed = changed + redis.call('zadd', ns .. ':due', 'ch', fire, id)
        redis.call('hset', ns .. ':meta', id, ARGV[i + 2] .. ' ' .. couple)
        redis.call('hset', ns .. ':events', id, ARGV[i + 4])
        redis.call('zadd', index, fire, id)
    end
end
return changed
"""

# Lua's unpack() has a stack limit of about 8,000 values: bulk commands go in slices.
_BULK = """
local function bulk(command, key, values, step)
    local slice = 4000 - 4000 % step
    for first = 1, #values, slice do
        redis.call(command, key, unpack(values, first, math.min(first + slice - 1, #values)))
    end
end
"""

# KEYS[1] = namespace, KEYS[2] = the Dramatiq queue key; ARGV = now ms, limit, fired ttl ms.
# Every write is one bulk command per batch, not one per event: the script's cost and the
# AOF it writes grow with the batch, by bytes rather than by commands.
_CLAIM = (
    _BULK
    + """
local ns, queue = KEYS[1], KEYS[2]
local now, limit, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local due = redis.call('zrangebyscore', ns .. ':due', '-inf', now, 'LIMIT', 0, limit)
if #due == 0 then
    return {0, {}}
end
local messages = {}
local metas = {}
for first = 1, #due, 4000 do
    local last = math.min(first + 3999, #due)
    local m = redis.call('hmget', ns .. ':events', unpack(due, first, last))
    local d = redis.call('hmget', ns .. ':meta', unpack(due, first, last))
    for j = 1, #m do
        messages[first + j - 1] = m[j]
        metas[first + j - 1] = d[j]
    end
end
local stored, ids, missed, fired = {}, {}, {}, {}
for i, id in ipairs(due) do
    local message, meta = messages[i], metas[i]
    local deadline = meta and tonumber(string.match(meta, '^(%d+) '))
    if message and deadline and deadline >= now then
        stored[#stored + 1] = id
        stored[#stored + 1] = message
        ids[#ids + 1] = id
    else
        missed[#missed + 1] = id
    end
    fired[#fired + 1] = now
    fired[#fired + 1] = id
end
if #ids > 0 then
    bulk('hset', queue .. '.msgs', stored, 2)
    bulk('rpush', queue, ids, 1)
end
if #missed > 0 then
    bulk('rpush', ns .. ':missed', missed, 1)
end
bulk('zrem', ns .. ':due', due, 1)
bulk('hdel', ns .. ':events', due, 1)
bulk('hdel', ns .. ':meta', due, 1)
bulk('zadd', ns .. ':fired', fired, 2)
redis.call('zremrangebyscore', ns .. ':fired', '-inf', '(' .. (now - ttl))
return {#ids, missed}
"""
)

# KEYS[1] = namespace; ARGV = couple, due-by ms (-1: none), then event ids to keep
_DROP = """
local ns = KEYS[1]
local index = ns .. ':couple:' .. ARGV[1]
local since = tonumber(ARGV[2])
local keep = {}
for i = 3, #ARGV do keep[ARGV[i]] = true end
local removed = 0
for _, id in ipairs(redis.call('zrange', index, 0, -1)) do
    local fire = tonumber(redis.call('zscore', ns .. ':due', id))
    if not keep[id] and not (fire and since >= 0 and fire <= since) then
        removed = removed + redis.call('zrem', ns .. ':due', id)
        redis.call('hdel', ns .. ':events', id)
        redis.call('hdel', ns .. ':meta', id)
        redis.call('zrem', index, id)
    end
end
return removed
"""

# KEYS[1] = namespace; ARGV = now ms, then event ids
_MISS = """
local ns = KEYS[1]
local missed = 0
for i = 2, #ARGV do
    if not redis.call('zscore', ns .. ':fired', ARGV[i]) then
        redis.call('zadd', ns .. ':fired', ARGV[1], ARGV[i])
        redis.call('rpush', ns .. ':missed', ARGV[i])
        missed = missed + 1
    end
end
return missed
"""
