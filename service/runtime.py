"""The one composition root: every running part of Hearth, built once from ``Settings``.

``Runtime(settings)`` builds, on first use, the Redis client (``REDIS_URL``, or the embedded
server in the data dir, shared by every process of ``hearth run``), the database engine, the
Dramatiq broker, the sender (Twilio when credentials are set, else the console/outbox; held
to ``HEARTH_SMS_RATE`` when it is set), the live couple config (with its last good versions
shared in Redis), the clock, the grace and the lease; and from those the send path, the
reply handler, the feed publisher, the weekly summaries and the schedule store. The
scheduler, the worker, the web app and the CLI all build through it, so they cannot disagree
(a lease, a grace, a timeout).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, cast

from dramatiq.brokers.redis import RedisBroker
from redis import Redis

from service import logs
from service.capabilities import service_secret
from service.config.live import LiveConfig
from service.config.shared import RedisLastGood
from service.dashboard import DashboardLinks, DashboardPages
from service.deliveries import Receipts
from service.domain.deadlines import Grace
from service.embedded_redis import EmbeddedRedis
from service.encryption import Cipher
from service.feeds.publisher import FeedPublisher
from service.inbound import enqueue_feed_render
from service.replying import ReplyHandler
from service.scheduler.follow_ups import ScheduleFollowUps
from service.scheduler.planner import PROMPTS_QUEUE
from service.scheduler.store import ScheduleStore
from service.senders import ConsoleSender
from service.senders.rate import RateLimitedSender, sms_rate_limiter
from service.sending import SendPath
from service.storage import (
    AnswerLog,
    DashboardTokens,
    FeedTokens,
    PartnerStates,
    PromptLog,
    ReplyLog,
    RitualVersions,
    make_engine,
)
from service.summaries import WeeklySummaries

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from service.domain.clock import Clock
    from service.domain.couples import Couple, Partner
    from service.senders import Sender
    from service.settings import Settings

__all__ = ["RefreshingCouples", "Runtime", "build_sender", "configure_logging", "redis_url"]

# Every Redis client fails a call within this, rather than hanging a loop on a dead server.
REDIS_TIMEOUT_S = 5.0
# A crashed worker's unacknowledged messages come back once its heartbeat is this old and a
# maintenance pass runs; Dramatiq's defaults (60 s, 0.1 % of commands) often take 10-20 min.
HEARTBEAT_TIMEOUT_MS = 30_000
MAINTENANCE_CHANCE = 20_000


def configure_logging(settings: Settings, process: str, level: int = logging.INFO) -> None:
    """This process's log lines, as ``HEARTH_LOG_FORMAT`` says (``service/logs.py``): the
    same pipeline for the scheduler, the worker and the web app; numbers masked."""
    logs.configure(settings.log_format, process=process, level=level)


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


class Runtime:
    """The parts of one Hearth process, each built once, on first use, from ``settings``."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        redis_url: str | None = None,
        redis: Redis | None = None,
        engine: Engine | None = None,
        broker: RedisBroker | None = None,
    ) -> None:
        """Parts given here (a test's, or a command's that has them) are used as they are
        and left to their owner to close."""
        self.settings = settings
        self.clock: Clock = clock or settings.clock
        self._redis_url = redis_url
        self._given: dict[str, object] = {
            name: part
            for name, part in (("redis", redis), ("engine", engine), ("broker", broker))
            if part is not None
        }
        self.grace = Grace(prompt=settings.grace_prompt, reminder=settings.grace_reminder)
        self.lease = timedelta(seconds=settings.prompt_lease_s)

    @cached_property
    def redis_url(self) -> str:
        return self._redis_url or redis_url(self.settings)

    @cached_property
    def redis(self) -> Redis:
        if "redis" in self._given:
            return cast("Redis", self._given["redis"])
        return Redis.from_url(
            self.redis_url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            health_check_interval=30,
        )

    @cached_property
    def engine(self) -> Engine:
        if "engine" in self._given:
            return cast("Engine", self._given["engine"])
        return make_engine(self.settings.log_url)

    @cached_property
    def broker(self) -> RedisBroker:
        if "broker" in self._given:
            return cast("RedisBroker", self._given["broker"])
        return RedisBroker(  # type: ignore[no-untyped-call]
            url=self.redis_url,
            heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=MAINTENANCE_CHANCE,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )

    @cached_property
    def sender(self) -> Sender:
        """The provider's sender; with ``HEARTH_SMS_RATE``, held to that rate by a limiter
        in Redis that every process of the service shares."""
        sender = build_sender(self.settings)
        if self.settings.sms_rate is None:
            return sender
        return RateLimitedSender(sender, sms_rate_limiter(self.redis, self.settings.sms_rate))

    def live_config(self) -> LiveConfig:
        """The config directory, its last good versions shared through Redis."""
        return LiveConfig(self.settings.config_dir, RedisLastGood(self.redis))

    @cached_property
    def couples(self) -> RefreshingCouples:
        """One loaded config for every actor of a worker process (refreshed by one thread)."""
        return RefreshingCouples(self.live_config())

    @cached_property
    def cipher(self) -> Cipher:
        """Seals journal text and raw replies with HEARTH_SECRET_KEY (plaintext without it)."""
        return self.settings.cipher

    @cached_property
    def prompts(self) -> PromptLog:
        return PromptLog(self.engine, lease=self.lease)

    @cached_property
    def partners(self) -> PartnerStates:
        """Partner states; unreachable numbers are fingerprinted with the service's secret."""
        return PartnerStates(self.engine, number_key=self.secret)

    @cached_property
    def secret(self) -> bytes:
        """The service's secret (HEARTH_FEED_SECRET, or the data dir's): feed tokens and
        number fingerprints are keyed with it."""
        return service_secret(self.settings.feed_secret, self.settings.data_dir)

    def receipts(self) -> Receipts:
        """Delivery receipts; a resend is queued on the broker."""
        return Receipts(self.prompts, self.partners, self.broker)

    def schedule_store(self) -> ScheduleStore:
        return ScheduleStore(self.redis, queue=PROMPTS_QUEUE)

    def send_path(self) -> SendPath:
        return SendPath(
            self.couples,
            self.prompts,
            self.partners,
            self.sender,
            self.clock,
            answers=AnswerLog(self.engine, self.cipher),
            grace=self.grace,
        )

    def reply_handler(self, *, republish_feeds: bool = True) -> ReplyHandler:
        """The reply handler; skips and moves queue a render of the couple's feeds."""
        broker = self.broker if republish_feeds else None
        republish = (lambda couple: enqueue_feed_render(broker, couple)) if broker else None
        return ReplyHandler(
            self.couples,
            ReplyLog(self.engine, self.cipher),
            AnswerLog(self.engine, self.cipher),
            self.prompts,
            self.partners,
            self.sender,
            self.clock,
            ScheduleFollowUps(self.redis, self.schedule_store(), self.grace, republish=republish),
            keyword_replies=self.settings.hearth_answers_keywords,
            grace=self.grace,
        )

    def feed_publisher(self) -> FeedPublisher:
        return FeedPublisher(
            self.couples,
            FeedTokens(self.engine),
            RitualVersions(self.engine),
            AnswerLog(self.engine, self.cipher),
            self.redis,
            self.clock,
            self.secret,
            self.settings.public_url,
        )

    def dashboard_links(self) -> DashboardLinks:
        return DashboardLinks(DashboardTokens(self.engine), self.secret, self.settings.public_url)

    def dashboard_pages(self) -> DashboardPages:
        return DashboardPages(
            self.dashboard_links(),
            self.couples,
            AnswerLog(self.engine, self.cipher),
            self.prompts,
            self.partners,
            self.feed_publisher(),
            self.clock,
        )

    def weekly_summaries(self) -> WeeklySummaries:
        return WeeklySummaries(
            self.couples,
            AnswerLog(self.engine, self.cipher),
            self.prompts,
            self.partners,
            self.sender,
            self.clock,
            self.grace,
        )

    def close(self) -> None:
        """Release what was built (connections, pools); parts never built are left alone."""
        built = {name for name in ("broker", "redis", "engine") if name in self.__dict__}
        built -= set(self._given)
        if "broker" in built:
            self.broker.close()
        if "redis" in built:
            self.redis.close()
        if "engine" in built:
            self.engine.dispose()


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

    def unreadable(self, couple_id: str) -> bool:
        return self.live.unreadable(couple_id)

    def refresh_now(self) -> None:
        """Read the directory now, waiting for a refresh another thread has begun: for a
        decision that must not rest on a version older than the scheduler's."""
        with self._refreshing:
            self.live.refresh()
            self._checked = time.monotonic()

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
