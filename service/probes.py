"""Readings of the running service, taken when asked: for ``/readyz`` and ``/metrics``.

Every number comes from Redis (or the log, ``service/storage/tallies.py``), never from
another process's memory, so the web process can tell how the scheduler and the workers
are doing:

- the scheduler's heartbeat (``hearth:scheduler:heartbeat``, written on each pass with its
  clock's time, ``service/scheduler/process.py``);
- the scheduler's lag: now minus the fire instant of the oldest event still in
  ``hearth:due`` (a claimed event leaves it), 0 when none is overdue;
- the depth of Dramatiq's queues (``dramatiq:<queue>`` lists, ``<queue>.DQ`` for delayed
  messages) and dead letters (``<queue>.XQ`` sorted sets);
- the live workers: Dramatiq's ``RedisBroker`` puts each consumer (one per queue, delay
  queues included, in each worker process) in ``dramatiq:__heartbeats__`` with the wall
  time (ms) of its last fetch, and counts one as dead past its heartbeat timeout
  (``runtime.HEARTBEAT_TIMEOUT_MS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

from dramatiq.common import current_millis

from service.inbound import REPLIES_QUEUE
from service.runtime import HEARTBEAT_TIMEOUT_MS
from service.scheduler.planner import PROMPTS_QUEUE
from service.scheduler.process import HEARTBEAT_KEY
from service.scheduler.store import ScheduleStore

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["QUEUES", "Probes", "QueueDepth"]

QUEUES = (PROMPTS_QUEUE, REPLIES_QUEUE)
DRAMATIQ_NS = "dramatiq"
WORKER_HEARTBEATS = f"{DRAMATIQ_NS}:__heartbeats__"


@dataclass(frozen=True, slots=True)
class QueueDepth:
    queue: str
    ready: int  # waiting to be taken
    delayed: int  # waiting for their time (retries, held texts)
    dead: int  # dead-lettered


class Probes:
    """What Redis says about the scheduler, the queues and the workers; raises RedisError."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._store = ScheduleStore(redis)

    def scheduler_heartbeat_age_s(self, now: datetime) -> float | None:
        """Seconds since the last scheduler pass (by the service's clock); None: never ran."""
        raw = cast("bytes | None", self._redis.get(HEARTBEAT_KEY))
        if raw is None:
            return None
        return max(now.timestamp() - int(raw) / 1000, 0.0)

    def scheduler_lag_s(self, now: datetime) -> float:
        """Now minus the oldest due event not yet claimed; 0 when nothing is overdue."""
        oldest = self._store.next_due()
        return 0.0 if oldest is None else max((now - oldest).total_seconds(), 0.0)

    def queues(self) -> list[QueueDepth]:
        pipe = self._redis.pipeline(transaction=False)
        for queue in QUEUES:
            pipe.llen(f"{DRAMATIQ_NS}:{queue}")
            pipe.llen(f"{DRAMATIQ_NS}:{queue}.DQ")
            pipe.zcard(f"{DRAMATIQ_NS}:{queue}.XQ")
        counts = [int(n) for n in pipe.execute()]
        return [QueueDepth(queue, *counts[i * 3 : i * 3 + 3]) for i, queue in enumerate(QUEUES)]

    def live_consumers(self) -> int:
        """Dramatiq consumers whose heartbeat is within the timeout (by Dramatiq's own clock,
        which stamps them: the service's clock offset does not apply); 0: no live worker."""
        now_ms = current_millis()
        return int(self._redis.zcount(WORKER_HEARTBEATS, now_ms - HEARTBEAT_TIMEOUT_MS, "+inf"))
