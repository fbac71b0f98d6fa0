"""``RateLimitedSender`` against the embedded Redis: the shared limiter's slots, the bound on
waiting, failing open, and ``Runtime`` wrapping the sender only when a rate is set.

Which bucket let each text through is read from the limiter's own key (a backend that notes
the key of each slot it granted), not from a clock read beside it: the assertions count
slots, never time.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dramatiq.rate_limits import BucketRateLimiter
from dramatiq.rate_limits.backends import RedisBackend
from hypothesis import given
from hypothesis import strategies as st
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.runtime import Runtime
from service.senders import ConsoleSender, Lookup, Outgoing, RetryableDeliveryError, SentBefore
from service.senders.rate import MIN_BUCKET_MS, RateLimitedSender, bucket_for, sms_rate_limiter
from service.settings import Settings

NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def _text(i: int = 0) -> Outgoing:
    return Outgoing(
        event_id=f"alex-sam/check_in/20261125T2100/prompt/alex#{i}",
        occurrence_id="alex-sam/check_in/20261125T2100",
        couple="alex-sam",
        ritual="check_in",
        partner="alex",
        to="+4915112340001",
        body="Hi Alex, check-in time.",
    )


class Recording:
    """A sender that keeps what it was given: the text, the instant, and the limiter key of
    the slot the calling thread was granted last."""

    def __init__(self, granted: threading.local | None = None) -> None:
        self.sent: list[tuple[str, datetime, str | None]] = []
        self.looked_up: list[str] = []
        self._granted = granted
        self._lock = threading.Lock()

    def send(self, text: Outgoing, now: datetime) -> str:
        key = getattr(self._granted, "key", None) if self._granted is not None else None
        with self._lock:
            self.sent.append((text.event_id, now, key))
        return f"rec-{text.event_id}"

    def lookup(
        self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> SentBefore | Lookup:
        self.looked_up.append(text.event_id)
        return Lookup.NOT_SENT


class NotingBackend(RedisBackend):  # type: ignore[misc]
    """Dramatiq's Redis backend, noting per thread the key of each slot it grants."""

    def __init__(self, client: Redis, granted: threading.local) -> None:
        super().__init__(client=client)
        self.granted = granted

    def add(self, key: str, value: int, ttl: int) -> bool:
        added = bool(super().add(key, value, ttl))
        if added:
            self.granted.key = key
        return added

    def incr(self, key: str, amount: int, maximum: int, ttl: int) -> bool:
        taken = bool(super().incr(key, amount, maximum, ttl))
        if taken:
            self.granted.key = key
        return taken


def _limiter(backend: RedisBackend, limit: int, bucket_ms: int) -> BucketRateLimiter:
    return BucketRateLimiter(  # type: ignore[no-untyped-call]
        backend, "hearth:sms-rate", limit=limit, bucket=bucket_ms
    )


@pytest.mark.parametrize(
    ("rate", "limit", "bucket_ms"),
    [
        (5, 1, 200),
        (10, 1, 100),
        (20, 2, 100),
        (1, 1, 1000),
        (0.5, 1, 2000),
        (2.5, 1, 400),
        (3, 1, 334),  # rounded up: 2.994/s, never above
        (100, 10, 100),
    ],
)
def test_a_rate_maps_to_the_fewest_texts_per_bucket_of_at_least_100_ms(
    rate: float, limit: int, bucket_ms: int
) -> None:
    assert bucket_for(rate) == (limit, bucket_ms)


@given(st.floats(min_value=0.001, max_value=10_000))
def test_a_rates_buckets_never_allow_more_and_lose_at_most_1_percent(rate: float) -> None:
    limit, bucket_ms = bucket_for(rate)
    allowed = limit * 1000 / bucket_ms
    assert bucket_ms >= MIN_BUCKET_MS
    assert rate / 1.01 <= allowed <= rate


def test_threads_sharing_the_limiter_get_at_most_its_limit_per_bucket(
    redis_client: Redis,
) -> None:
    granted = threading.local()
    limit, bucket_ms = bucket_for(20)  # 2 texts per 100 ms
    inner = Recording(granted)
    sender = RateLimitedSender(
        inner, _limiter(NotingBackend(redis_client, granted), limit, bucket_ms)
    )
    threads, each = 5, 6

    def burst(t: int) -> None:
        for i in range(each):
            sender.send(_text(t * 100 + i), NOW)

    workers = [threading.Thread(target=burst, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert not any(w.is_alive() for w in workers)

    assert len(inner.sent) == len({event for event, _, _ in inner.sent}) == threads * each
    per_bucket = Counter(key for _, _, key in inner.sent)
    assert None not in per_bucket  # every text went through a slot the limiter granted
    assert max(per_bucket.values()) <= limit
    assert len(per_bucket) >= threads * each // limit


def test_the_instant_handed_on_includes_the_wait_for_a_slot(redis_client: Redis) -> None:
    inner = Recording()
    sender = RateLimitedSender(inner, _limiter(RedisBackend(client=redis_client), 1, 200))
    for i in range(3):
        sender.send(_text(i), NOW)
    # One text per bucket: the third waited for the bucket after next, at least one whole
    # bucket after the first (less the few milliseconds the limiter's clock and the sleep
    # may disagree by).
    assert inner.sent[-1][1] >= NOW + timedelta(milliseconds=150)
    assert [now for _, now, _ in inner.sent] == sorted(now for _, now, _ in inner.sent)


def test_no_slot_within_the_bound_raises_retryable_and_sends_nothing(
    redis_client: Redis,
) -> None:
    # One text an hour, already taken: nothing frees a slot within the bound.
    limiter = _limiter(RedisBackend(client=redis_client), 1, 3_600_000)
    with limiter.acquire():
        pass
    inner = Recording()
    sender = RateLimitedSender(inner, limiter, max_wait_s=0.3)
    with pytest.raises(RetryableDeliveryError, match="HEARTH_SMS_RATE"):
        sender.send(_text(), NOW)
    assert inner.sent == []


def test_lookup_is_not_limited(redis_client: Redis) -> None:
    limiter = _limiter(RedisBackend(client=redis_client), 1, 3_600_000)
    with limiter.acquire():
        pass
    inner = Recording()
    sender = RateLimitedSender(inner, limiter, max_wait_s=0.1)
    assert sender.lookup(_text(), NOW) is Lookup.NOT_SENT
    assert inner.looked_up == [_text().event_id]


def test_an_unreachable_limiter_fails_open_and_the_text_goes_out(tmp_path: Path) -> None:
    no_retries = Retry(NoBackoff(), retries=0)
    with Redis(unix_socket_path=str(tmp_path / "no-redis.sock"), retry=no_retries) as unreachable:
        inner = Recording()
        sender = RateLimitedSender(inner, sms_rate_limiter(unreachable, 1), max_wait_s=0.1)
        assert sender.send(_text(), NOW) == f"rec-{_text().event_id}"
    assert [event for event, _, _ in inner.sent] == [_text().event_id]


def test_runtime_wraps_the_sender_only_when_a_rate_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_client: Redis
) -> None:
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "HEARTH_SMS_RATE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    base: dict[str, Any] = {"HEARTH_DATA_DIR": str(tmp_path / "var")}

    unlimited = Runtime(Settings(**base), redis=redis_client).sender
    assert isinstance(unlimited, ConsoleSender)

    limited = Runtime(Settings(**base, HEARTH_SMS_RATE="2.5"), redis=redis_client).sender
    assert isinstance(limited, RateLimitedSender)
    assert isinstance(limited.inner, ConsoleSender)
    limited.send(_text(), NOW)
    assert [k.decode() for k in redis_client.scan_iter("hearth:sms-rate@*")] != []
