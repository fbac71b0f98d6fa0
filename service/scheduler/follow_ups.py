"""What replies set in motion in the schedule: re-plans after a skip or move, snoozed prompts,
revealed answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from service.scheduler.planner import Grace, scheduled_event
from service.scheduler.replans import ReplanQueue

if TYPE_CHECKING:
    from datetime import datetime

    from redis import Redis

    from service.domain.sends import PlannedSend
    from service.scheduler.store import ScheduleStore

__all__ = ["ScheduleFollowUps"]


class ScheduleFollowUps:
    """``FollowUps`` on the schedule in Redis; every call is idempotent."""

    def __init__(
        self,
        redis: Redis,
        store: ScheduleStore,
        grace: Grace | None = None,
        namespace: str = "hearth",
        *,
        republish: Callable[[str], None] | None = None,
    ) -> None:
        self._redis = redis
        self._store = store
        self._grace = grace or Grace()
        self._republish = republish
        self._replans = ReplanQueue(redis, namespace)

    def occurrence_changed(
        self, event: str, couple_id: str, occurrence_id: str, since: datetime
    ) -> None:
        # A scheduler re-plans the couple on its next tick, from ``since`` (the reply's
        # arrival), and the couple's calendar feeds are rendered again.
        self._replans.add(couple_id, since)
        if self._republish is not None:
            self._republish(couple_id)

    def snooze(self, send: PlannedSend) -> None:
        # Through the schedule like every send: fired once, held by quiet hours, and the
        # fired marker makes a redelivered reply's second call a no-op.
        self._store.add([scheduled_event(send, self._grace)])

    def reveal(self, send: PlannedSend) -> None:
        # As a snooze: the scheduler's claim enqueues it (held past quiet hours), its fired
        # marker makes every later delivery's call a no-op, and the send path's claim in the
        # prompt log sends it once.
        self._store.add([scheduled_event(send, self._grace)])
