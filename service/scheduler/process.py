"""The scheduler as a process: watch the config, plan, claim due events, record the missed,
and reconcile what crashes left behind.

Several may run at once (for availability): the claim is atomic, planning is idempotent, and
the missed and the reconciled are recorded idempotently. ``run`` returns when ``stop`` is set.

It wakes at the next due instant (or to look at the config again, at most every
``refresh``), so lateness is the claim's, not a fixed sleep's. It survives its dependencies:
a Redis or database error is logged once, the loop backs off (up to ``MAX_BACKOFF``) and
carries on, and nothing is lost meanwhile — the claim keeps missed ids in Redis until they
are recorded, and unfinished work is still in the database for the sweeps.

The sweeps (every ``sweep_every``):
- replies stored but not finished (their message lost, or a crash after ``settle``) are
  queued again;
- pending sends nobody is working on (claimed or released longer ago than the lease, their
  message dead-lettered or lost) are queued again, at most once per lease each; the send
  path then asks the provider's record before sending anything a dead worker may have sent;
- sends whose outcome is unknown (a timeout or a 5xx after the request went out) are
  queued again once ``PromptLog.recheck_after`` has passed, for up to ``RECHECK_FOR``
  after they were due: their claim looks for them in the provider's record (a receipt,
  then its message list) and sends only if there is none; those left are reported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from redis.exceptions import RedisError

from service.domain.errors import HearthError
from service.domain.events import ConfirmationId, SendId, parse_event_id
from service.inbound import REPLIES_QUEUE, REPLY_RECEIVED, WEEK_ENDED, enqueue, enqueue_feed_render
from service.runtime import Runtime
from service.scheduler.planner import (
    PROMPTS_QUEUE,
    SEND_PROMPT,
    Scheduler,
    later_event_message,
)
from service.sending import record_missed
from service.storage import AnswerLog, PromptState, ReplyLog, StorageError

if TYPE_CHECKING:
    from dramatiq import Broker
    from redis import Redis

    from service.config.live import LiveConfig
    from service.domain.clock import Clock
    from service.settings import Settings
    from service.storage import PromptLog, PromptRecord

__all__ = ["HEARTBEAT_KEY", "Reconciler", "SchedulerProcess", "run"]

log = logging.getLogger("hearth.scheduler")

UNFINISHED_AFTER = timedelta(minutes=2)
# Unknown sends are looked for at the provider while their text could still matter; the
# send path records them missed once past their deadline, so this only bounds the search.
RECHECK_FOR = timedelta(days=2)
REQUEUE_EVERY = timedelta(minutes=10)
MAX_BACKOFF = timedelta(seconds=5)
# Re-queue markers older than this are forgotten.
PRUNE_AFTER_MS = 24 * 3600 * 1000
# Each pass writes its clock's time here (ms since the epoch): /readyz reads it.
HEARTBEAT_KEY = "hearth:scheduler:heartbeat"
# What a loop survives: its dependencies failing, never its own bugs.
DEPENDENCY_ERRORS = (RedisError, StorageError, HearthError, OSError)


def run(
    settings: Settings,
    clock: Clock,
    stop: threading.Event,
    *,
    refresh: timedelta = timedelta(seconds=2),
    sweep_every: timedelta = timedelta(seconds=30),
) -> None:
    """Run one scheduler until ``stop`` is set."""
    runtime = Runtime(settings, clock=clock)
    try:
        SchedulerProcess(runtime, refresh=refresh, sweep_every=sweep_every).run(stop)
    finally:
        runtime.close()


class SchedulerProcess:
    """One scheduler's loop over the parts ``runtime`` builds; ``step`` is one pass."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        refresh: timedelta = timedelta(seconds=2),
        sweep_every: timedelta = timedelta(seconds=30),
    ) -> None:
        self._runtime = runtime
        self._clock = runtime.clock
        self._refresh = refresh
        self._sweep_every = sweep_every
        self._live: LiveConfig = runtime.live_config()
        self._scheduler = Scheduler(
            runtime.schedule_store(),
            runtime.redis,
            grace=runtime.grace,
            on_missed=self._missed,
            changes=AnswerLog(runtime.engine, runtime.cipher).changes,
        )
        self._reconciler = Reconciler(
            runtime.prompts, ReplyLog(runtime.engine, runtime.cipher), runtime.broker, runtime.redis
        )
        # Edits not yet handed to the scheduler and the feeds: kept until a sync succeeds, so
        # a Redis or database error in the middle of one loses none (the config's own
        # refresh reports each edit once).
        self._unsynced = True
        self._edited: set[str] | None = None  # None: every couple (at start)
        self._removed: set[str] = set()
        self._refreshed_at = float("-inf")
        self._swept_at = float("-inf")

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop``; a dependency's error is logged once and backed off from."""
        failing_since: float | None = None
        backoff = 0.1
        while not stop.is_set():
            try:
                wait = self.step()
            except DEPENDENCY_ERRORS as e:
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.error("scheduler: %s: %s; retrying, losing nothing", type(e).__name__, e)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF.total_seconds())
                continue
            if failing_since is not None:
                log.warning("scheduler: recovered after %.1f s", time.monotonic() - failing_since)
                failing_since, backoff = None, 0.1
            stop.wait(wait)

    def step(self) -> float:
        """One pass: config, plan, claim, missed, sweeps, heartbeat. Returns seconds until
        the next."""
        if self._unsynced or time.monotonic() - self._refreshed_at >= self._refresh.total_seconds():
            self._refresh_config()
        now = self._clock.now()
        claimed = self._scheduler.tick(now)
        if claimed.enqueued:
            log.info("enqueued %d events", claimed.enqueued)
        if time.monotonic() - self._swept_at >= self._sweep_every.total_seconds():
            self._reconciler.sweep(now)
            self._swept_at = time.monotonic()
        # Last, so a pass that failed part-way leaves the heartbeat going stale.
        self._runtime.redis.set(HEARTBEAT_KEY, _ms(now))
        return self._until_next()

    def _refresh_config(self) -> None:
        changed = self._live.refresh()
        self._refreshed_at = time.monotonic()
        if changed.any or changed.reread:
            # A file read again with the same description still makes the scheduler compare
            # it with the plan's digest: another scheduler may have planned a version this
            # one never saw.
            self._unsynced = True
            if self._edited is not None:
                self._edited |= set(changed.changed)
            self._removed |= set(changed.removed)
        if not self._unsynced:
            self._scheduler.mark_synced(self._clock.now())
            return
        couples = self._live.couples
        self._scheduler.set_couples(couples, self._clock.now())
        # ritual.changed: republish the feeds of couples whose file changed since their
        # feeds were last queued (at start: since before the restart).
        edited = couples if self._edited is None else {
            c: couples[c] for c in self._edited if c in couples
        }  # fmt: skip
        redis = self._runtime.redis
        digests = {c: self._scheduler.digest(c) for c in edited}
        stale, removed = _feeds_to_render(redis, digests, sorted(self._removed))
        for couple_id in [*stale, *removed]:
            enqueue_feed_render(self._runtime.broker, couple_id)
        _feeds_rendered(redis, stale, removed)
        self._unsynced, self._edited, self._removed = False, set(), set()

    def _until_next(self) -> float:
        """Until the next due event, or the next config refresh, whichever is first."""
        refresh_s = self._refresh.total_seconds() - (time.monotonic() - self._refreshed_at)
        due = self._scheduler.next_due()
        if due is None:
            return max(refresh_s, 0.0)
        due_s = (due - self._clock.now()).total_seconds()
        return max(min(due_s, refresh_s), 0.0)

    def _missed(self, event_ids: list[str]) -> None:
        """Texts that came due past their deadline are recorded missed; a couple-level job
        (a feed render) is run late instead. Raises on a database error: the ids stay in
        Redis and come back on the next pass."""
        now = self._clock.now()
        texts = 0
        for event_id in event_ids:
            try:
                parsed = parse_event_id(event_id)
            except ValueError:
                log.error("missed event with a bad id %r: dropped", event_id)
                continue
            if isinstance(parsed, SendId):
                record_missed(self._live, self._runtime.prompts, parsed,
                              "came due past its deadline", now)  # fmt: skip
                texts += 1
            elif (message := later_event_message(event_id)) is not None:
                enqueue(self._runtime.broker, PROMPTS_QUEUE, *message)
        if texts:
            log.warning("%d texts came due past their deadline; recorded as missed", texts)


class Reconciler:
    """Finishes what a crash left: the scheduler's sweeps (see the module's docstring)."""

    def __init__(
        self,
        prompts: PromptLog,
        replies: ReplyLog,
        broker: Broker,
        redis: Redis,
        namespace: str = "hearth",
    ) -> None:
        self._prompts = prompts
        self._replies = replies
        self._broker = broker
        self._redis = redis
        self._ns = namespace
        self._unknown_reported = -1
        self._requeue = redis.register_script(_REQUEUE)

    def sweep(self, now: datetime) -> None:
        self.requeue_unfinished_replies(now)
        self.requeue_stale_sends(now)
        self.recheck_unknown_sends(now)
        self.report_unknown()

    def requeue_unfinished_replies(self, now: datetime) -> int:
        """Replies stored but not finished a while after they came: queued again (handling
        is idempotent); a marker keeps one that keeps failing from being queued again more
        than every ``REQUEUE_EVERY``."""
        requeued = 0
        for sid in self._replies.unfinished(now - UNFINISHED_AFTER):
            if self._first(f"unfinished/{sid}", REQUEUE_EVERY, now):
                enqueue(self._broker, REPLIES_QUEUE, REPLY_RECEIVED, {"message_sid": sid})
                requeued += 1
        if requeued:
            log.warning("re-queued %d replies that were not finished in time", requeued)
        return requeued

    def requeue_stale_sends(self, now: datetime) -> int:
        """Pending sends nobody is working on, queued again (at most once per lease each)."""
        requeued = 0
        for record in self._prompts.stale(now):
            message = _message_for(record)
            if message is None:
                log.error("pending send with a bad id %r: left alone", record.event_id)
                continue
            if self._first(record.event_id, self._prompts.lease, now):
                enqueue(self._broker, *message)
                requeued += 1
        if requeued:
            log.warning("re-queued %d pending sends whose message was lost", requeued)
        return requeued

    def recheck_unknown_sends(self, now: datetime) -> int:
        """Unknown sends queued again (once per ``recheck_after`` each), for their claim to
        look for them at the provider before anything is sent."""
        requeued = 0
        every = self._prompts.recheck_after
        for record in self._prompts.unknown(now, since=now - RECHECK_FOR):
            message = _message_for(record)
            if message is None:
                continue
            if self._first(f"recheck/{record.event_id}", every, now):
                enqueue(self._broker, *message)
                requeued += 1
        if requeued:
            log.warning("looking up %d sends with an unknown outcome at the provider", requeued)
        return requeued

    def report_unknown(self) -> int:
        """Sends whose outcome is unknown, reported when their number changes."""
        unknown = self._prompts.counts()[PromptState.UNKNOWN]
        if unknown != self._unknown_reported and unknown:
            log.warning(
                "%d sends have an unknown outcome (the provider may have them); each is "
                "looked up at the provider before it may be sent again",
                unknown,
            )
        self._unknown_reported = unknown
        return unknown

    def _first(self, key: str, every: timedelta, now: datetime) -> bool:
        """True for the first caller per ``every`` of the service's own clock (not Redis's:
        a drill or a test that moves the clock moves these too), across schedulers."""
        return bool(
            self._requeue(
                keys=[f"{self._ns}:requeued"],
                args=[key, _ms(now), int(every.total_seconds() * 1000), PRUNE_AFTER_MS],
            )
        )


def _message_for(record: PromptRecord) -> tuple[str, str, dict[str, str]] | None:
    """The queue, actor and arguments that handle a pending row's event again."""
    try:
        parsed = parse_event_id(record.event_id)
    except ValueError:
        return None
    if isinstance(parsed, ConfirmationId):
        return REPLIES_QUEUE, REPLY_RECEIVED, {"message_sid": parsed.message_sid}
    if not isinstance(parsed, SendId):
        return None
    if parsed.is_summary:
        kwargs = {"couple": parsed.couple, "week": parsed.week.isoformat(),
                  "partner": parsed.partner}  # fmt: skip
        return PROMPTS_QUEUE, WEEK_ENDED, kwargs
    return (
        PROMPTS_QUEUE,
        SEND_PROMPT,
        {
            "event_id": record.event_id,
            "occurrence_id": record.occurrence_id,
            "couple": record.couple,
            "ritual": record.ritual,
            "partner": record.partner,
            "purpose": record.purpose,
            "due": record.due_at.astimezone(UTC).isoformat(),
        },
    )


_FEED_SOURCES = "hearth:feed-sources"


def _feeds_to_render(
    redis: Redis, digests: Mapping[str, str], removed: list[str]
) -> tuple[dict[str, str], list[str]]:
    """Couples (by id, with the digest of their description now) whose description differs
    from the one their feeds were last queued for (kept in ``hearth:feed-sources``), and
    removed ones that had feeds. Recorded by ``_feeds_rendered`` once their renders are
    queued, so a restart does not render ten thousand unchanged feeds again, and a failed
    queueing is retried."""
    ids = list(digests)
    known = cast("list[bytes | None]", redis.hmget(_FEED_SOURCES, ids)) if ids else []
    stale = {i: digests[i] for i, old in zip(ids, known, strict=True) if old != digests[i].encode()}
    return stale, removed


def _feeds_rendered(redis: Redis, stale: Mapping[str, str], removed: list[str]) -> None:
    if stale:
        redis.hset(_FEED_SOURCES, mapping={i: digest for i, digest in stale.items()})  # noqa: C416 - typed by context
    if removed:
        redis.hdel(_FEED_SOURCES, *removed)


def _ms(instant: datetime) -> int:
    return round(instant.timestamp() * 1000)


# KEYS[1] = the markers (sorted set: key -> when it was last re-queued, ms);
# ARGV = key, now ms, every ms, prune-after ms. 1 when the caller may re-queue it now.
_REQUEUE = """
local last = redis.call('zscore', KEYS[1], ARGV[1])
local now = tonumber(ARGV[2])
if last and tonumber(last) + tonumber(ARGV[3]) > now then
    return 0
end
redis.call('zadd', KEYS[1], now, ARGV[1])
redis.call('zremrangebyscore', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[4])))
return 1
"""
