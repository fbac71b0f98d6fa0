"""Building the running service's parts from ``Settings``: the one place adapters are chosen.

Redis is ``REDIS_URL`` or the embedded server in the data dir (shared by every process of
``hearth run``); the sender is Twilio when credentials are set, else the console/outbox.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from service.config.live import LiveConfig
from service.embedded_redis import EmbeddedRedis
from service.feeds.publisher import FeedPublisher
from service.feeds.tokens import feed_secret
from service.inbound import enqueue_feed_render
from service.replying import ReplyHandler
from service.scheduler.follow_ups import ScheduleFollowUps
from service.scheduler.planner import PROMPTS_QUEUE, Grace
from service.scheduler.store import ScheduleStore
from service.senders import ConsoleSender
from service.sending import SendPath
from service.storage import (
    AnswerLog,
    FeedTokens,
    PartnerStates,
    PromptLog,
    ReplyLog,
    RitualVersions,
    make_engine,
)
from service.summaries import WeeklySummaries

if TYPE_CHECKING:
    from dramatiq import Broker
    from redis import Redis
    from sqlalchemy import Engine

    from service.domain.clock import Clock
    from service.domain.couples import Couple, Partner
    from service.senders import Sender
    from service.settings import Settings

__all__ = [
    "RefreshingCouples",
    "build_feed_publisher",
    "build_reply_handler",
    "build_send_path",
    "build_sender",
    "build_weekly_summaries",
    "redis_url",
    "refreshing_couples",
]


def redis_url(settings: Settings) -> str:
    """``REDIS_URL``, or the embedded server's URL (started now, or shared if running)."""
    if settings.redis_url:
        return settings.redis_url
    return EmbeddedRedis(settings.data_dir).start()


def build_sender(settings: Settings) -> Sender:
    if settings.twilio_enabled:
        from service.senders.twilio import TwilioSender  # noqa: PLC0415 - only with credentials

        return TwilioSender.from_settings(settings)
    return ConsoleSender(settings.outbox_path)


class RefreshingCouples:
    """The config directory for workers: re-read at most every ``every_s`` seconds, by one
    thread at a time (the others read the version in place meanwhile)."""

    def __init__(self, live: LiveConfig, every_s: float = 2.0) -> None:
        self.live = live
        self._every_s = every_s
        self._checked = float("-inf")
        self._refreshing = threading.Lock()

    def get(self, couple_id: str) -> Couple | None:
        self._maybe_refresh()
        return self.live.get(couple_id)

    def by_phone(self, phone: str) -> list[tuple[Couple, Partner]]:
        self._maybe_refresh()
        return self.live.by_phone(phone)

    def _maybe_refresh(self) -> None:
        if time.monotonic() - self._checked < self._every_s:
            return
        if not self._refreshing.acquire(blocking=self._checked == float("-inf")):
            return  # another thread is refreshing; the current version serves meanwhile
        try:
            if time.monotonic() - self._checked >= self._every_s:
                self.live.refresh()
                self._checked = time.monotonic()
        finally:
            self._refreshing.release()


def refreshing_couples(settings: Settings) -> RefreshingCouples:
    return RefreshingCouples(LiveConfig(settings.config_dir))


# Each builder takes the ``engine`` and ``couples`` a worker process's actors share (one
# loaded config, one connection pool), and makes its own when called alone.


def build_send_path(
    settings: Settings,
    clock: Clock,
    engine: Engine | None = None,
    couples: RefreshingCouples | None = None,
) -> SendPath:
    engine = engine or make_engine(settings.log_url)
    return SendPath(
        couples or refreshing_couples(settings),
        PromptLog(engine, lease=timedelta(seconds=settings.prompt_lease_s)),
        PartnerStates(engine),
        build_sender(settings),
        clock,
        answers=AnswerLog(engine),
    )


def build_reply_handler(
    settings: Settings,
    clock: Clock,
    redis: Redis,
    engine: Engine | None = None,
    broker: Broker | None = None,
    couples: RefreshingCouples | None = None,
) -> ReplyHandler:
    """The reply handler; on ``engine`` when given (its owner disposes of it). With
    ``broker``, skips and moves queue a render of the couple's feeds."""
    engine = engine or make_engine(settings.log_url)
    grace = Grace(prompt=settings.grace_prompt, reminder=settings.grace_reminder)
    republish = (lambda couple: enqueue_feed_render(broker, couple)) if broker else None
    return ReplyHandler(
        couples or refreshing_couples(settings),
        ReplyLog(engine),
        AnswerLog(engine),
        PromptLog(engine, lease=timedelta(seconds=settings.prompt_lease_s)),
        PartnerStates(engine),
        build_sender(settings),
        clock,
        ScheduleFollowUps(
            redis, ScheduleStore(redis, queue=PROMPTS_QUEUE), grace, republish=republish
        ),
        keyword_replies=settings.hearth_answers_keywords,
    )


def build_feed_publisher(
    settings: Settings,
    clock: Clock,
    redis: Redis,
    engine: Engine | None = None,
    couples: RefreshingCouples | None = None,
) -> FeedPublisher:
    engine = engine or make_engine(settings.log_url)
    return FeedPublisher(
        couples or refreshing_couples(settings),
        FeedTokens(engine),
        RitualVersions(engine),
        AnswerLog(engine),
        redis,
        clock,
        feed_secret(settings.feed_secret, settings.data_dir),
        settings.public_url,
    )


def build_weekly_summaries(
    settings: Settings,
    clock: Clock,
    engine: Engine | None = None,
    couples: RefreshingCouples | None = None,
) -> WeeklySummaries:
    engine = engine or make_engine(settings.log_url)
    return WeeklySummaries(
        couples or refreshing_couples(settings),
        AnswerLog(engine),
        PromptLog(engine, lease=timedelta(seconds=settings.prompt_lease_s)),
        PartnerStates(engine),
        build_sender(settings),
        clock,
    )
