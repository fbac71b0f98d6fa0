"""The ``send_prompt`` actor in a real, in-process Dramatiq worker on the embedded Redis.

Scheduler to outbox, a duplicated message, provider refusals retried by Dramatiq's Retries
middleware (Twilio through the Prism mock), a final refusal, and the actor's own re-enqueue
for quiet hours, on a real prompt log (SQLite, and PostgreSQL when DATABASE_URL is set).
"""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dramatiq
import dramatiq.broker
import pytest
from dramatiq.brokers.redis import RedisBroker
from twilio.rest import Client

from service.domain.clock import ManualClock
from service.domain.couples import Couple
from service.domain.deadlines import Grace
from service.scheduler import ScheduledEvent, ScheduleStore
from service.scheduler.planner import PROMPTS_QUEUE, scheduled_events
from service.senders import ConsoleSender, RetryableDeliveryError, Sender
from service.senders.twilio import TwilioSender
from service.sending import SendPath
from service.storage import PartnerStates, PromptLog, PromptState, make_engine, migrate
from tests.databases import BACKENDS, database
from tests.domain.builders import couple
from tests.twilio_mock import ACCOUNT_SID, AUTH_TOKEN, MockTwilioHttpClient
from tests.waiting import outbox_lines, wait_for
from workers import prompts

if TYPE_CHECKING:
    from dramatiq import Actor
    from dramatiq.broker import Broker, MessageProxy
    from redis import Redis
    from twilio.http.response import Response

WAIT_S = 30.0  # bound for waiting on the worker; never a measurement
STOP_MS = 10_000
START = datetime(2026, 6, 1, tzinfo=UTC)
FROM = "+15005550006"
MOCK_SID = "SM" + "a" * 32  # the spec's example: Prism does not echo
SAM = {"name": "Sam", "phone": "+15550000002"}


@dataclass
class Couples:
    by_id: dict[str, Couple] = field(default_factory=dict)

    def get(self, couple_id: str) -> Couple | None:
        return self.by_id.get(couple_id)

    def add(self, *couples: Couple) -> None:
        for c in couples:
            self.by_id[c.id] = c


class Runs(dramatiq.Middleware):
    """Every message the worker finished processing: its event id and what it raised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._finished: list[tuple[str, BaseException | None]] = []

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            self._finished.append((message.kwargs["event_id"], exception))

    @property
    def finished(self) -> list[tuple[str, BaseException | None]]:
        with self._lock:
            return list(self._finished)


class CountingHttpClient(MockTwilioHttpClient):
    """The mock's HTTP client, keeping the URL of every request the Twilio library made."""

    def __init__(self, mock_url: str) -> None:
        super().__init__(mock_url)
        self.requests: list[str] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self.requests.append(f"{method} {url}")
        return super().request(method, url, *args, **kwargs)


@dataclass
class Rig:
    broker: RedisBroker
    actor: Actor[..., None]
    prompts: PromptLog
    partners: PartnerStates
    couples: Couples
    clock: ManualClock
    outbox: Path
    runs: Runs

    def use(self, sender: Sender, grace: Grace = Grace()) -> None:
        prompts.use(
            SendPath(self.couples, self.prompts, self.partners, sender, self.clock, grace=grace)
        )

    def console(self) -> ConsoleSender:
        return ConsoleSender(self.outbox, io.StringIO())

    def sent_ids(self) -> list[str]:
        return [json.loads(line)["event_id"] for line in outbox_lines(self.outbox)]

    @contextmanager
    def worker(self) -> Iterator[None]:
        worker = dramatiq.Worker(self.broker, worker_threads=2, worker_timeout=100)
        worker.start()
        try:
            yield
        finally:
            worker.stop(timeout=STOP_MS)

    def wait_until_processed(self, count: int) -> None:
        wait_for(
            lambda: len(self.runs.finished) >= count,
            WAIT_S,
            f"{count} processed message(s)",
            detail=lambda: f"processed: {self.runs.finished}",
        )

    def drain(self) -> None:
        """Wait until the queue, its delay queue and this worker's unacked messages are empty."""
        self.broker.join(PROMPTS_QUEUE, timeout=int(WAIT_S * 1000))


@pytest.fixture(params=BACKENDS)
def rig(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Rig]:
    # declare() and use() keep the actor and the send path in the module; put them back after.
    monkeypatch.setattr(prompts, "_wiring", prompts._Wiring())
    with database(request.param, tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        broker = RedisBroker(url=redis_url)  # type: ignore[no-untyped-call]
        runs = Runs()
        broker.add_middleware(runs)
        try:
            actor = prompts.declare(broker, min_backoff_ms=100, max_backoff_ms=500)
            yield Rig(
                broker=broker,
                actor=actor,
                # A short lease: a copy answered "busy" comes back after it, in real time.
                prompts=PromptLog(engine, lease=timedelta(seconds=1)),
                partners=PartnerStates(engine),
                couples=Couples(),
                clock=ManualClock(START),
                outbox=tmp_path / "outbox.jsonl",
                runs=runs,
            )
        finally:
            broker.close()
            broker.client.connection_pool.disconnect()
            engine.dispose()


def _first_event(c: Couple, partner: str = "alex") -> ScheduledEvent:
    events = scheduled_events(c, START, START + timedelta(days=1))
    return next(e for e in events if e.kwargs["partner"] == partner)


def test_every_send_the_scheduler_claims_reaches_the_outbox_exactly_once(
    rig: Rig, redis_client: Redis
) -> None:
    couples = [couple({"kind": "check_in"}, couple=f"couple-{i}") for i in range(3)]
    rig.couples.add(*couples)
    store = ScheduleStore(redis_client, queue=PROMPTS_QUEUE)
    events = [e for c in couples for e in scheduled_events(c, START, START + timedelta(days=2))]
    assert store.add(events) == len(events)
    first = min(e.fire_at for e in events)
    due = [e.event_id for e in events if e.fire_at <= first]
    later = {e.event_id for e in events} - set(due)
    assert len(due) == 6  # three couples, two partners, the first evening
    rig.clock.set(first)
    rig.use(rig.console())
    claimed = store.claim_due(first)
    assert claimed.enqueued == len(due)
    assert claimed.missed == []
    with rig.worker():
        wait_for(
            lambda: len(outbox_lines(rig.outbox)) >= len(due),
            WAIT_S,
            f"{len(due)} lines in the outbox",
            detail=lambda: f"outbox: {rig.sent_ids()}",
        )
        rig.drain()
    assert Counter(rig.sent_ids()) == Counter(due)  # each claimed send once, nothing else
    assert rig.prompts.counts()[PromptState.SENT] == len(due)
    assert {event_id for event_id, _ in store.pending()} == later
    assert all(exception is None for _, exception in rig.runs.finished)


def test_message_enqueued_twice_sends_once(rig: Rig) -> None:
    c = couple({"kind": "check_in"})
    rig.couples.add(c)
    event = _first_event(c)
    rig.clock.set(event.fire_at)
    rig.use(rig.console())
    rig.actor.send(**event.kwargs)
    rig.actor.send(**event.kwargs)
    with rig.worker():
        # Both copies are processed. If they ran at once, the later one was answered "busy"
        # and re-enqueued for after the first one's lease (already past on this clock), and
        # that copy then found the send done.
        rig.wait_until_processed(2)
        rig.drain()
    assert rig.sent_ids() == [event.event_id]
    record = rig.prompts.get(event.event_id)
    assert record is not None
    assert record.state is PromptState.SENT
    assert record.attempts == 1
    assert all(exception is None for _, exception in rig.runs.finished)


def test_provider_5xx_leaves_the_send_unknown_and_never_sends_it_again(
    rig: Rig, twilio_mock_url: str
) -> None:
    c = couple({"kind": "check_in"})
    rig.couples.add(c)
    event = _first_event(c)
    rig.clock.set(event.fire_at)
    http = CountingHttpClient(twilio_mock_url)
    http.force_status(500)
    rig.use(TwilioSender(Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http), FROM))
    rig.actor.send(**event.kwargs)
    rig.actor.send(**event.kwargs)  # a redelivery too
    with rig.worker():
        rig.wait_until_processed(2)
        rig.drain()
    record = rig.prompts.get(event.event_id)
    assert record is not None
    assert record.state is PromptState.UNKNOWN
    assert record.error is not None
    assert "HTTP 500" in record.error
    assert len(http.requests) == 1  # Twilio may have it: never asked to send it again
    assert all(exception is None for _, exception in rig.runs.finished)


@pytest.mark.parametrize("status", [429])
def test_provider_refusal_worth_retrying_is_retried_by_dramatiq_and_sent_once(
    rig: Rig, twilio_mock_url: str, status: int
) -> None:
    c = couple({"kind": "check_in"})
    rig.couples.add(c)
    event = _first_event(c)
    rig.clock.set(event.fire_at)
    http = CountingHttpClient(twilio_mock_url)
    http.force_status(status)
    rig.use(TwilioSender(Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http), FROM))
    rig.actor.send(**event.kwargs)
    with rig.worker():
        rig.wait_until_processed(2)
        rig.drain()
    record = rig.prompts.get(event.event_id)
    assert record is not None
    assert record.state is PromptState.SENT
    assert record.provider_id == MOCK_SID
    assert record.attempts == 2  # released after the refusal, claimed again by the retry
    assert len(http.requests) == 2
    first, second = rig.runs.finished
    assert isinstance(first[1], RetryableDeliveryError)
    assert f"HTTP {status}" in str(first[1])
    assert second == (event.event_id, None)


def test_final_provider_refusal_fails_the_send_without_a_retry(
    rig: Rig, twilio_mock_url: str
) -> None:
    c = couple({"kind": "check_in"})
    rig.couples.add(c)
    event = _first_event(c)
    rig.clock.set(event.fire_at)
    http = CountingHttpClient(twilio_mock_url)
    # Prism answers 422 to an AccountSid outside ^AC[0-9a-fA-F]{32}$ in the path: a real
    # 4xx from the mock, which the Twilio sender turns into a permanent delivery error.
    client = Client("AC" + "z" * 32, AUTH_TOKEN, http_client=http)
    rig.use(TwilioSender(client, FROM))
    rig.actor.send(**event.kwargs)
    with rig.worker():
        rig.wait_until_processed(1)
        rig.drain()
    record = rig.prompts.get(event.event_id)
    assert record is not None
    assert record.state is PromptState.FAILED
    assert record.error is not None
    assert "HTTP 422" in record.error
    assert record.provider_id is None
    assert len(http.requests) == 1
    assert rig.runs.finished == [(event.event_id, None)]  # ran once, raised nothing


def test_send_held_by_quiet_hours_is_requeued_by_the_actor_for_their_end(
    rig: Rig, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The actor computes the delay from the send path's clock: this test lives in real time.
    # No global broker: the actor re-enqueues on the broker it was declared on.
    monkeypatch.setattr(dramatiq.broker, "global_broker", None)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    quiet = f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}"
    alex = {"name": "Alex", "phone": "+15550000001", "quiet_hours": quiet}
    at = f"{now - timedelta(hours=3):%H:%M}"
    c = couple(
        {"kind": "check_in", "schedule": f"every day at {at}"}, timezone="UTC", partners=[alex, SAM]
    )
    rig.couples.add(c)
    event = next(  # the last evening's prompt, handled late: now, inside quiet hours
        e for e in reversed(scheduled_events(c, now - timedelta(days=2), now))
        if e.kwargs["partner"] == "alex"
    )  # fmt: skip
    rig.clock.set(datetime.now(UTC))
    # A grace long enough that the hold ends before the deadline (else: recorded missed).
    rig.use(rig.console(), Grace(prompt=timedelta(hours=6)))
    rig.actor.send(**event.kwargs)
    with rig.worker():
        rig.wait_until_processed(1)
    # Stopping the worker put the delayed message it had prefetched back on the delay queue.
    delayed = [i.decode() for i in redis_client.lrange(f"dramatiq:{PROMPTS_QUEUE}.DQ", 0, -1)]
    assert len(delayed) == 1
    raw = redis_client.hget(f"dramatiq:{PROMPTS_QUEUE}.DQ.msgs", delayed[0])
    assert isinstance(raw, bytes)
    message = json.loads(raw)
    assert message["actor_name"] == "send_prompt"
    assert message["kwargs"] == event.kwargs
    release_ms = int((now + timedelta(hours=1)).timestamp() * 1000)
    # The eta is the quiet hours' end; the slack covers the actor's own run, not a timing.
    assert release_ms - 1 <= message["options"]["eta"] <= release_ms + 60_000
    assert rig.sent_ids() == []
    record = rig.prompts.get(event.event_id)
    assert record is not None
    assert record.state is PromptState.PENDING
    assert record.claimed_at is None  # released: the held message may claim it at once
    assert dramatiq.broker.global_broker is None
    assert rig.runs.finished == [(event.event_id, None)]
