"""What replies set in motion in the schedule: re-plans after a skip or move, snoozed prompts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from service.scheduler.planner import Grace, replan_key, scheduled_event

if TYPE_CHECKING:
    from redis import Redis

    from service.domain.sends import PlannedSend
    from service.scheduler.store import ScheduleStore

__all__ = ["ScheduleFollowUps"]


class ScheduleFollowUps:
    """``FollowUps`` on the schedule in Redis; both calls are idempotent."""

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
        self._key = replan_key(namespace)

    def occurrence_changed(self, event: str, couple_id: str, occurrence_id: str) -> None:
        # A scheduler re-plans the couple on its next tick (then removes it from the set),
        # and the couple's calendar feeds are rendered again.
        self._redis.sadd(self._key, couple_id)
        if self._republish is not None:
            self._republish(couple_id)

    def snooze(self, send: PlannedSend) -> None:
        # Through the schedule like every send: fired once, held by quiet hours, and the
        # fired marker makes a redelivered reply's second call a no-op.
        self._store.add([scheduled_event(send, self._grace)])
