"""The scheduler as a process: watch the config, plan, claim due events, record the missed.

Several may run at once (for availability): the claim is atomic, planning is idempotent, and
each one records the missed events it claimed. ``run`` returns when ``stop`` is set.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from redis import Redis

from service.config.live import LiveConfig
from service.runtime import redis_url
from service.scheduler.planner import PROMPTS_QUEUE, Grace, Scheduler
from service.scheduler.store import ScheduleStore
from service.sending import record_missed
from service.storage import PromptLog, make_engine

if TYPE_CHECKING:
    from service.domain.clock import Clock
    from service.settings import Settings

__all__ = ["run"]

log = logging.getLogger("hearth.scheduler")


def run(
    settings: Settings,
    clock: Clock,
    stop: threading.Event,
    *,
    tick: timedelta = timedelta(seconds=1),
    refresh_every: int = 2,
) -> None:
    """Tick every ``tick`` until ``stop`` is set; re-read the config every ``refresh_every``."""
    redis = Redis.from_url(redis_url(settings))
    prompts = PromptLog(make_engine(settings.log_url))
    live = LiveConfig(settings.config_dir)

    def missed(event_ids: list[str]) -> None:
        now = clock.now()
        for event_id in event_ids:
            record_missed(live, prompts, event_id, "came due past its grace", now)
        log.warning(
            "%d sends came due past their grace and were recorded as missed", len(event_ids)
        )

    scheduler = Scheduler(
        ScheduleStore(redis, queue=PROMPTS_QUEUE),
        redis,
        grace=Grace(prompt=settings.grace_prompt, reminder=settings.grace_reminder),
        on_missed=missed,
    )
    ticks = 0
    try:
        while not stop.is_set():
            if ticks % refresh_every == 0:
                changed = live.refresh()
                if changed.any or ticks == 0:
                    scheduler.set_couples(live.couples, clock.now())
            claimed = scheduler.tick(clock.now())
            if claimed.enqueued:
                log.info("enqueued %d sends", claimed.enqueued)
            ticks += 1
            stop.wait(tick.total_seconds())
    finally:
        redis.close()
