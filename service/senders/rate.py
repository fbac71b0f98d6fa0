"""A provider rate shared by every worker: at most ``HEARTH_SMS_RATE`` texts per second.

``RateLimitedSender`` wraps the real sender; each ``send`` first takes a slot from one
limiter in Redis that every worker thread, process and machine shares, and waits for one
while the account's rate is used up, so a 21:00 burst flows out at that rate instead of
meeting the provider's 429s. ``lookup`` is not limited (it sends nothing).

Dramatiq's ``BucketRateLimiter``, not its ``WindowRateLimiter`` (both read in dramatiq 2.2):
the window limiter counts whole seconds (one key per wall-clock second, a window of at least
one second, an integer limit), so 5/s lets 5 texts go at the top of each second at once and
2.5/s must become 5 per 2 s; its sliding sum WATCHes every second's key of the window. The
bucket limiter's buckets are in milliseconds, aligned to the epoch, one key each (set with
``NX``, then a WATCHed increment), expiring one bucket after they were last touched. So a
rate maps to one text per ``1000 / rate`` ms (``bucket_for``): 5/s is 1 per 200 ms, texts
evenly spaced, and any rate, 0.5 or 2.5 included, is exact to the millisecond. Buckets are
kept at least ``MIN_BUCKET_MS`` long (more texts per bucket above 10/s), so that the threads
waiting for a slot wake a few times a second rather than every few milliseconds.

The bound, ``limit`` texts per bucket: ``rate`` texts in any second aligned to the buckets
(exactly, when the bucket divides 1,000 ms), at most ``rate + limit`` in any one second (the
end of one bucket and the start of the next; the burst Dramatiq's docs warn of, one text
here below 10/s), and ``rate`` on average. Bucket keys come from each machine's own clock:
machines whose clocks disagree by a fraction of a bucket can each fill the bucket they
believe current, a short burst of up to twice the bound, never a higher average.

Keys (``ns`` is the service's namespace, ``hearth`` by default):

    {ns}:sms-rate@{bucket start, ms since the epoch}   string: texts sent in that bucket
"""

from __future__ import annotations

import logging
import math
import random
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from dramatiq.common import current_millis
from dramatiq.rate_limits import BucketRateLimiter
from dramatiq.rate_limits.backends import RedisBackend
from redis.exceptions import RedisError

from service.senders.base import RetryableDeliveryError

if TYPE_CHECKING:
    from datetime import datetime

    from redis import Redis

    from service.senders.base import Lookup, Outgoing, Sender, SentBefore

__all__ = ["MAX_WAIT_S", "MIN_BUCKET_MS", "RateLimitedSender", "bucket_for", "sms_rate_limiter"]

log = logging.getLogger("hearth.senders.rate")

# How long one send waits for a slot before giving its message back to the queue: well
# inside the send actor's 60 s time limit, and long enough that a burst of a few hundred
# texts at a few per second drains without a retry.
MAX_WAIT_S = 20.0
MIN_BUCKET_MS = 100
# Waiting threads wake at the next bucket's start plus up to this much, so that every
# worker of every machine does not ask Redis in the same millisecond.
_JITTER_S = 0.005


def bucket_for(rate: float) -> tuple[int, int]:
    """``(limit, bucket_ms)`` for ``rate`` texts per second: the fewest texts per bucket that
    allow a bucket of at least ``MIN_BUCKET_MS``, and the bucket rounded up, so that
    ``limit * 1000 / bucket_ms`` never exceeds ``rate``."""
    if not rate > 0:
        raise ValueError(f"a rate must be positive, not {rate!r}")
    limit = max(1, math.ceil(rate * MIN_BUCKET_MS / 1000))
    return limit, math.ceil(limit * 1000 / rate)


def sms_rate_limiter(redis: Redis, rate: float, namespace: str = "hearth") -> BucketRateLimiter:
    """The limiter every sender of the service shares, ``rate`` texts per second."""
    limit, bucket_ms = bucket_for(rate)
    return BucketRateLimiter(  # type: ignore[no-untyped-call]
        RedisBackend(client=redis),
        f"{namespace}:sms-rate",
        limit=limit,
        bucket=bucket_ms,
    )


class RateLimitedSender:
    """``inner``, at most ``limiter``'s rate across every process that shares it.

    ``send`` waits for a slot (the worker thread blocks: that is how texts flow at the rate)
    for up to ``max_wait_s``, then raises ``RetryableDeliveryError``: nothing went out, the
    send path releases its claim and the message is retried. The instant handed to ``inner``
    is ``now`` plus the time spent waiting, so that the outbox's ``sent_at`` is when the text
    went out.
    """

    def __init__(
        self, inner: Sender, limiter: BucketRateLimiter, *, max_wait_s: float = MAX_WAIT_S
    ) -> None:
        self.inner = inner
        self._limiter = limiter
        self._bucket_ms: int = limiter.bucket
        self._max_wait_s = max_wait_s

    def send(self, text: Outgoing, now: datetime) -> str:
        waited_s = self._wait_for_slot(text)
        return self.inner.send(text, now + timedelta(seconds=waited_s))

    def lookup(
        self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> SentBefore | Lookup:
        return self.inner.lookup(text, since, exclude)

    def _wait_for_slot(self, text: Outgoing) -> float:
        """Seconds waited until a slot was taken; ``RetryableDeliveryError`` past the bound."""
        started = time.monotonic()
        while True:
            if self._take(text):
                return time.monotonic() - started
            waited_s = time.monotonic() - started
            if waited_s >= self._max_wait_s:
                raise RetryableDeliveryError(
                    f"no slot under HEARTH_SMS_RATE within {self._max_wait_s:g} s"
                )
            time.sleep(min(self._until_next_bucket(), self._max_wait_s - waited_s))

    def _take(self, text: Outgoing) -> bool:
        try:
            with self._limiter.acquire(raise_on_failure=False) as acquired:
                return bool(acquired)
        except RedisError as e:
            # Fail open: send anyway. Raising Retryable would put the text back on a queue
            # that lives in the same unreachable Redis (the retry's enqueue can fail too, and
            # the message then waits for Dramatiq's redelivery), while the sender needs no
            # Redis at all. The worst an open limiter costs is the provider's 429s, which
            # the Twilio sender already turns into a released claim and a retry: no text
            # is lost either way, and none is held back by an outage of the limiter alone.
            log.warning("%s: the rate limiter is unreachable (%s); sending unlimited",
                        text.event_id, type(e).__name__)  # fmt: skip
            return True

    def _until_next_bucket(self) -> float:
        """Seconds until the limiter's next bucket starts: its buckets follow Dramatiq's
        own clock (``current_millis``, which keys them), not the service's shifted one."""
        into_bucket_ms = current_millis() % self._bucket_ms
        return (self._bucket_ms - into_bucket_ms) / 1000 + random.uniform(0, _JITTER_S)
