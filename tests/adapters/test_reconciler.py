"""The reconciler finishes what a crash left: stale sends and unfinished replies are queued
again (once per lease or per re-queue period), held sends are left to their hold, and sends
whose outcome is unknown are reported, never resent."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dramatiq.brokers.redis import RedisBroker

from service.domain.clock import ManualClock
from service.domain.events import ConfirmationId, Purpose, SendId, week_occurrence_id
from service.inbound import REPLIES_QUEUE
from service.scheduler.planner import PROMPTS_QUEUE
from service.scheduler.process import Reconciler
from service.storage import Prompt, PromptLog, ReplyLog, make_engine, migrate
from tests.databases import BACKENDS, database

if TYPE_CHECKING:
    from redis import Redis

NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
OCC = "alex-sam/check_in/20261127T2100"


@pytest.fixture(params=BACKENDS)
def parts(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_client: Redis
) -> Iterator[tuple[Reconciler, PromptLog, ReplyLog, ManualClock]]:
    with database(request.param, tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        broker = RedisBroker(url=redis_url)  # type: ignore[no-untyped-call]
        clock = ManualClock(NOW)
        prompts, replies = PromptLog(engine, lease=LEASE), ReplyLog(engine)
        try:
            yield Reconciler(prompts, replies, broker, redis_client), prompts, replies, clock
        finally:
            broker.close()
            engine.dispose()


def _prompt(send: SendId) -> Prompt:
    return Prompt(str(send), send.occurrence_id, send.couple, send.ritual, send.partner,
                  str(send.purpose), NOW)  # fmt: skip


def _queued(redis: Redis, queue: str) -> list[dict[str, object]]:
    ids = [i.decode() for i in redis.lrange(f"dramatiq:{queue}", 0, -1)]
    raw = redis.hmget(f"dramatiq:{queue}.msgs", ids) if ids else []
    return [json.loads(m) for m in raw if m is not None]


def test_a_send_whose_worker_died_is_queued_again_once_per_lease(
    parts: tuple[Reconciler, PromptLog, ReplyLog, ManualClock], redis_client: Redis
) -> None:
    reconciler, prompts, _, _ = parts
    dead = SendId(OCC, Purpose.prompt(), "alex")
    working = SendId(OCC, Purpose.prompt(), "sam")
    prompts.claim(_prompt(dead), NOW)
    prompts.claim(_prompt(working), NOW + 2 * LEASE)
    later = NOW + 2 * LEASE + timedelta(seconds=1)
    assert reconciler.requeue_stale_sends(later) == 1
    [message] = _queued(redis_client, PROMPTS_QUEUE)
    assert message["actor_name"] == "send_prompt"
    assert message["kwargs"] == {
        "event_id": str(dead), "occurrence_id": OCC, "couple": "alex-sam",
        "ritual": "check_in", "partner": "alex", "purpose": "prompt",
        "due": NOW.isoformat(),
    }  # fmt: skip
    assert reconciler.requeue_stale_sends(later + timedelta(seconds=30)) == 0


def test_a_send_held_for_quiet_hours_is_left_to_its_hold(
    parts: tuple[Reconciler, PromptLog, ReplyLog, ManualClock],
) -> None:
    reconciler, prompts, _, _ = parts
    held = SendId(OCC, Purpose.prompt(), "alex")
    prompts.claim(_prompt(held), NOW)
    until = NOW + timedelta(hours=9)
    prompts.release(str(held), "quiet hours", NOW, until)
    assert reconciler.requeue_stale_sends(NOW + timedelta(hours=8)) == 0
    # Its hold ended a lease ago and nobody handled it: the message was lost.
    assert reconciler.requeue_stale_sends(until + LEASE + timedelta(seconds=1)) == 1


def test_summaries_and_confirmations_are_queued_to_their_own_actors(
    parts: tuple[Reconciler, PromptLog, ReplyLog, ManualClock], redis_client: Redis
) -> None:
    reconciler, prompts, _, _ = parts
    summary = SendId(week_occurrence_id("alex-sam", datetime(2026, 11, 23).date()),
                     Purpose.summary(), "sam")  # fmt: skip
    prompts.claim(_prompt(summary), NOW)
    sid = "SM" + "1" * 32
    confirmation = Prompt(str(ConfirmationId(sid)), "", "alex-sam", "", "alex", "confirmation",
                          NOW)  # fmt: skip
    prompts.claim(confirmation, NOW)
    assert reconciler.requeue_stale_sends(NOW + 2 * LEASE) == 2
    [week] = _queued(redis_client, PROMPTS_QUEUE)
    assert (week["actor_name"], week["kwargs"]) == (
        "week.ended", {"couple": "alex-sam", "week": "2026-11-23", "partner": "sam"},
    )  # fmt: skip
    [reply] = _queued(redis_client, REPLIES_QUEUE)
    assert (reply["actor_name"], reply["kwargs"]) == ("reply.received", {"message_sid": sid})


def test_replies_left_unfinished_are_queued_again(
    parts: tuple[Reconciler, PromptLog, ReplyLog, ManualClock], redis_client: Redis
) -> None:
    reconciler, _, replies, _ = parts
    sid = "SM" + "2" * 32
    replies.store(sid, {"MessageSid": sid, "From": "+15550000001", "Body": "done"}, NOW)
    assert reconciler.requeue_unfinished_replies(NOW + timedelta(minutes=1)) == 0
    assert reconciler.requeue_unfinished_replies(NOW + timedelta(minutes=3)) == 1
    assert reconciler.requeue_unfinished_replies(NOW + timedelta(minutes=4)) == 0
    assert [m["kwargs"] for m in _queued(redis_client, REPLIES_QUEUE)] == [{"message_sid": sid}]


def test_sends_with_an_unknown_outcome_are_reported_never_resent(
    parts: tuple[Reconciler, PromptLog, ReplyLog, ManualClock],
    redis_client: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reconciler, prompts, _, _ = parts
    send = SendId(OCC, Purpose.prompt(), "alex")
    prompts.claim(_prompt(send), NOW)
    prompts.mark_unknown(str(send), "Twilio answered HTTP 500", NOW)
    with caplog.at_level(logging.WARNING, logger="hearth.scheduler"):
        assert reconciler.report_unknown() == 1
    assert "1 sends have an unknown outcome" in caplog.text
    assert reconciler.requeue_stale_sends(NOW + timedelta(days=1)) == 0
    assert _queued(redis_client, PROMPTS_QUEUE) == []


def test_the_requeue_markers_follow_the_services_clock_not_redis(
    parts: tuple[Reconciler, PromptLog, ReplyLog, ManualClock], redis_client: Redis
) -> None:
    # Found by the lifecycle model: markers that expired in Redis's real time let a driven
    # clock (a drill, a test) re-queue a reply only once, however long it then stayed open.
    reconciler, _, replies, _ = parts
    sid = "SM" + "5" * 32
    replies.store(sid, {"MessageSid": sid, "From": "+15550000001", "Body": "done"}, NOW)
    assert reconciler.requeue_unfinished_replies(NOW + timedelta(minutes=3)) == 1
    assert reconciler.requeue_unfinished_replies(NOW + timedelta(minutes=12)) == 0
    assert reconciler.requeue_unfinished_replies(NOW + timedelta(minutes=13, seconds=1)) == 1
    assert len(_queued(redis_client, REPLIES_QUEUE)) == 2
