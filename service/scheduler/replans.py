"""Couples waiting to be re-planned because partners changed occurrences (SKIP, MOVE).

    {ns}:replan-since   sorted set: couple -> the earliest instant a waiting change may
                        affect (ms; the reply's arrival): a re-plan starts there, so a text
                        moved to a time that passes before the scheduler's next pass is
                        still claimed (late) rather than skipped
    {ns}:replan-rev     hash: couple -> how many changes were added; a pass forgets a couple
                        only if none was added while it re-planned (compare and delete)

A change is written to SQL before its follow-up adds the couple here, so a pass that finds
the counter unchanged has re-planned with every change in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["ReplanQueue", "Waiting"]


@dataclass(frozen=True, slots=True)
class Waiting:
    couple: str
    since: datetime  # aware UTC
    revision: int


class ReplanQueue:
    def __init__(self, redis: Redis, namespace: str = "hearth") -> None:
        self._redis = redis
        self._since = f"{namespace}:replan-since"
        self._rev = f"{namespace}:replan-rev"
        self._legacy = f"{namespace}:replan"  # a plain set, before the instant was kept
        self._done = redis.register_script(_DONE)

    def add(self, couple: str, since: datetime) -> None:
        """``couple`` waits for a re-plan covering texts from ``since`` on (idempotent)."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._since, {couple: _ms(since)}, lt=True)
            pipe.hincrby(self._rev, couple, 1)
            pipe.execute()

    def waiting(self, now: datetime) -> list[Waiting]:
        """Every couple waiting, with the instant its re-plan starts from."""
        for raw in cast("set[bytes]", self._redis.smembers(self._legacy)):
            self.add(raw.decode(), now)
            self._redis.srem(self._legacy, raw)
        rows = cast("list[tuple[bytes, float]]", self._redis.zrange(self._since, 0, -1,
                                                                    withscores=True))  # fmt: skip
        if not rows:
            return []
        revisions = cast("list[bytes | None]", self._redis.hmget(self._rev, [c for c, _ in rows]))
        return [
            Waiting(c.decode(), datetime.fromtimestamp(score / 1000, UTC), int(r or 0))
            for (c, score), r in zip(rows, revisions, strict=True)
        ]

    def done(self, waiting: Waiting) -> bool:
        """Forget the couple, unless a change was added since ``waiting`` was read."""
        return bool(self._done(keys=[self._since, self._rev],
                               args=[waiting.couple, waiting.revision]))  # fmt: skip

    def is_waiting(self, couple: str) -> bool:
        return self._redis.zscore(self._since, couple) is not None


def _ms(instant: datetime) -> int:
    return round(instant.timestamp() * 1000)


# KEYS = since, rev; ARGV = couple, the revision the re-plan saw
_DONE = """
local rev = tonumber(redis.call('hget', KEYS[2], ARGV[1]) or '0')
if rev ~= tonumber(ARGV[2]) then
    return 0
end
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('hdel', KEYS[2], ARGV[1])
return 1
"""
