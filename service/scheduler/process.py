"""The scheduler as a process: watch the config, plan, claim due events, record the missed.

Several may run at once (for availability): the claim is atomic, planning is idempotent, and
each one records the missed events it claimed. ``run`` returns when ``stop`` is set.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from dramatiq.brokers.redis import RedisBroker
from redis import Redis

from service.config.live import LiveConfig
from service.inbound import enqueue, enqueue_feed_render, enqueue_reply
from service.runtime import redis_url
from service.scheduler.planner import (
    PROMPTS_QUEUE,
    Grace,
    Scheduler,
    is_send_event,
    later_event_message,
)
from service.scheduler.store import ScheduleStore
from service.sending import record_missed
from service.storage import AnswerLog, PromptLog, ReplyLog, make_engine

if TYPE_CHECKING:
    from service.domain.clock import Clock
    from service.domain.couples import Couple
    from service.settings import Settings

__all__ = ["run"]

log = logging.getLogger("hearth.scheduler")

UNFINISHED_AFTER = timedelta(minutes=2)
REQUEUE_EVERY = timedelta(minutes=10)


def run(
    settings: Settings,
    clock: Clock,
    stop: threading.Event,
    *,
    tick: timedelta = timedelta(seconds=1),
    refresh_every: int = 2,
    sweep_every: int = 30,
) -> None:
    """Tick every ``tick`` until ``stop`` is set; re-read the config every ``refresh_every``."""
    url = redis_url(settings)
    redis = Redis.from_url(url)
    engine = make_engine(settings.log_url)
    prompts = PromptLog(engine)
    replies = ReplyLog(engine)
    broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    live = LiveConfig(settings.config_dir)

    def missed(event_ids: list[str]) -> None:
        now = clock.now()
        sends = [e for e in event_ids if is_send_event(e)]
        for event_id in sends:
            record_missed(live, prompts, event_id, "came due past its grace", now)
        if sends:
            log.warning("%d sends came due past their grace; recorded as missed", len(sends))
        for event_id in sorted(set(event_ids) - set(sends)):
            # A late feed render or weekly summary still helps: run it now.
            message = later_event_message(event_id)
            if message is not None:
                enqueue(broker, PROMPTS_QUEUE, *message)

    scheduler = Scheduler(
        ScheduleStore(redis, queue=PROMPTS_QUEUE),
        redis,
        grace=Grace(prompt=settings.grace_prompt, reminder=settings.grace_reminder),
        on_missed=missed,
        changes=AnswerLog(engine).changes,
    )
    ticks = 0
    try:
        while not stop.is_set():
            if ticks % refresh_every == 0:
                changed = live.refresh()
                if changed.any or ticks == 0:
                    scheduler.set_couples(live.couples, clock.now())
                    # ritual.changed: republish the feeds of couples whose file changed since
                    # their feeds were last queued (at start: since before the restart).
                    couples = live.couples
                    edited = couples if ticks == 0 else {c: couples[c] for c in changed.changed}
                    for couple_id in _feeds_to_render(redis, edited, changed.removed):
                        enqueue_feed_render(broker, couple_id)
            claimed = scheduler.tick(clock.now())
            if claimed.enqueued:
                log.info("enqueued %d sends", claimed.enqueued)
            if ticks % sweep_every == 0:
                _requeue_unfinished(replies, broker, redis, clock)
            ticks += 1
            stop.wait(tick.total_seconds())
    finally:
        broker.close()
        redis.close()


def _feeds_to_render(redis: Redis, couples: Mapping[str, Couple], removed: list[str]) -> list[str]:
    """Couples whose description differs from the one their feeds were last queued for
    (kept in ``hearth:feed-sources``), plus removed ones; the record is updated at once,
    so a restart does not render ten thousand unchanged feeds again."""
    key = "hearth:feed-sources"
    digests = {
        c.id: hashlib.sha256(c.model_dump_json().encode()).hexdigest() for c in couples.values()
    }
    ids = list(digests)
    known = cast("list[bytes | None]", redis.hmget(key, ids)) if ids else []
    stale = [i for i, old in zip(ids, known, strict=True) if old != digests[i].encode()]
    if stale:
        redis.hset(key, mapping={i: digests[i] for i in stale})
    if removed:
        redis.hdel(key, *removed)
    return stale + removed


def _requeue_unfinished(replies: ReplyLog, broker: RedisBroker, redis: Redis, clock: Clock) -> None:
    """Replies stored but still unhandled a while after they came: their message was lost
    (Redis was down when the webhook stored them, or was flushed). Handling is idempotent,
    so queueing one again that is merely slow costs a no-op; a marker keeps a reply that
    keeps failing from being queued again more than every ``REQUEUE_EVERY``."""
    requeued = 0
    for sid in replies.unfinished(clock.now() - UNFINISHED_AFTER):
        marker = f"hearth:requeued:{sid}"
        if redis.set(marker, 1, nx=True, ex=int(REQUEUE_EVERY.total_seconds())):
            enqueue_reply(broker, sid)
            requeued += 1
    if requeued:
        log.warning("re-queued %d replies that were not handled in time", requeued)
