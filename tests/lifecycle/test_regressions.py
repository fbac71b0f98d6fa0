"""Bugs the lifecycle model (test_lifecycle_model.py) found, each minimised to a plain test.

Each test names what went wrong; its docstring gives the sequence the state machine found
and what it came down to. A test marked ``xfail(strict=True)`` documents a finding that
needs a design decision: the model tolerates it (``ALLOWANCES`` there) until it is decided.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from dramatiq.brokers.redis import RedisBroker
from redis import Redis
from sqlalchemy import Engine

from service.deliveries import Receipt, Receipts
from service.domain.clock import ManualClock
from service.domain.couples import Couple, Partner
from service.domain.delivery import DeliveryStatus
from service.domain.events import Purpose, SendId
from service.domain.segments import words_digest
from service.domain.sends import planned_sends
from service.domain.summaries import summary_at
from service.replying import ReplyHandler
from service.runtime import Runtime
from service.scheduler.follow_ups import ScheduleFollowUps
from service.scheduler.planner import PROMPTS_QUEUE, Scheduler
from service.scheduler.process import Reconciler, SchedulerProcess
from service.scheduler.store import ScheduleStore
from service.senders import ConsoleSender
from service.sending import Outcome, SendPath, SendRequest
from service.settings import load_settings
from service.storage import (
    AnswerLog,
    ChangeEffect,
    PartnerStates,
    Prompt,
    PromptLog,
    PromptState,
    ReplyLog,
    ReplyState,
    Settlement,
    StorageError,
    make_engine,
    migrate,
)
from service.summaries import WeeklySummaries
from tests.couple_texts import VALID
from tests.domain.builders import couple
from tests.lifecycle.provider import FakeProvider, SendFault

LEASE = timedelta(minutes=2)


@dataclass
class Couples:
    by_id: dict[str, Couple] = field(default_factory=dict)

    def get(self, couple_id: str) -> Couple | None:
        return self.by_id.get(couple_id)

    def by_phone(self, phone: str) -> list[tuple[Couple, Partner]]:
        return [(c, p) for c in self.by_id.values() for p in c.partners if p.phone == phone]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'hearth.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _outbox(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_a_redelivery_at_the_very_end_of_the_lease_is_not_told_to_retry_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    """A worker claimed a send at T and died. Its message came back at T + lease exactly
    (the model's finale steps whole minutes, the lease is 2): the claim was not taken over
    (only a claim *older* than the lease was), and the busy answer asked to retry at
    T + lease, which is now. The actor re-enqueued it with no delay, busy again, and so on
    until the wall clock moved past T + lease: a spin (the model's frozen clock never moves,
    so its queue never drained)."""
    c = couple({"kind": "check_in"})
    send = planned_sends(c, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))[0]
    clock = ManualClock(send.at)
    prompts = PromptLog(engine, lease=LEASE)
    outbox = tmp_path / "outbox.jsonl"
    path = SendPath(Couples({c.id: c}), prompts, PartnerStates(engine),
                    ConsoleSender(outbox, io.StringIO()), clock)  # fmt: skip
    assert prompts.claim(Prompt.from_planned(send), clock.now())  # the worker that died
    clock.advance(LEASE)
    result = path.handle(SendRequest(send.id, send.due))
    assert result.outcome is not Outcome.BUSY or (
        result.retry_at is not None and result.retry_at > clock.now()
    ), f"busy, and told to retry at {result.retry_at}: now"
    assert result.retry_at is not None
    clock.set(result.retry_at)
    assert path.handle(SendRequest(send.id, send.due)).outcome is Outcome.SENT
    assert [line["event_id"] for line in _outbox(outbox)] == [send.event_id]


def test_a_confirmation_claimed_by_a_dead_worker_is_settled_when_its_partner_opted_out_since(
    engine: Engine, tmp_path: Path, redis_client: Redis
) -> None:
    """Alex texted HELP; the worker claimed the confirmation (``reply/<sid>``) and died
    before texting it. Alex then texted STOP. When the HELP reply came round again, the
    handler saw Alex opted out and recorded the reply confirmed with nothing to send, but
    left the claim pending: for ever, and the reconciler re-queued it every lease, for ever
    (the model's finale found ``reply/<sid>`` still pending)."""
    c = couple({"kind": "check_in"})
    alex = c.partners[0].phone
    clock = ManualClock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    prompts = PromptLog(engine, lease=LEASE)
    replies = ReplyLog(engine)
    outbox = tmp_path / "outbox.jsonl"
    handler = ReplyHandler(
        Couples({c.id: c}), replies, AnswerLog(engine), prompts, PartnerStates(engine),
        ConsoleSender(outbox, io.StringIO()), clock,
        ScheduleFollowUps(redis_client, ScheduleStore(redis_client, queue=PROMPTS_QUEUE)),
    )  # fmt: skip
    help_sid, stop_sid = "SM" + "1" * 32, "SM" + "2" * 32
    replies.store(help_sid, {"MessageSid": help_sid, "From": alex, "Body": "HELP"}, clock.now())
    # The worker that died: it had claimed the confirmation when it went.
    confirmation = Prompt(f"reply/{help_sid}", "", c.id, "", "alex", "confirmation", clock.now())
    assert prompts.claim(confirmation, clock.now())
    handler.handle(help_sid)  # its redelivery, within the lease: another holds the claim
    clock.advance(timedelta(seconds=30))
    replies.store(stop_sid, {"MessageSid": stop_sid, "From": alex, "Body": "STOP"}, clock.now())
    handler.handle(stop_sid)
    clock.advance(LEASE + timedelta(seconds=1))
    handler.handle(help_sid)  # the reconciler re-queued it
    record = replies.get(help_sid)
    assert record is not None
    assert record.state is ReplyState.CONFIRMED
    row = prompts.get(f"reply/{help_sid}")
    assert row is not None
    assert row.state is not PromptState.PENDING, "the dead worker's claim is left pending"
    broker = RedisBroker(client=redis_client)  # type: ignore[no-untyped-call]
    reconciler = Reconciler(prompts, replies, broker, redis_client)
    assert reconciler.requeue_stale_sends(clock.now() + 10 * LEASE) == 0
    assert [line["event_id"] for line in _outbox(outbox)] == [f"reply/{stop_sid}"]


@pytest.fixture
def scheduled(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SchedulerProcess, Runtime, Path, set[str]]]:
    """A scheduler over two couple files (a check-in every day at 21:00 Berlin each) whose
    database read of a couple's changes fails once for each couple put in the set."""
    config = tmp_path / "couples"
    config.mkdir()
    for name in ("a", "b"):
        _write(config / f"{name}.yaml", VALID)
    database = f"sqlite:///{tmp_path / 'hearth.sqlite3'}"
    migrate(database)
    for name, value in {"HEARTH_CONFIG_DIR": str(config), "HEARTH_DATA_DIR": str(tmp_path),
                        "REDIS_URL": redis_url, "DATABASE_URL": database}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    failing: set[str] = set()
    changes = AnswerLog.changes

    def failing_changes(self: AnswerLog, couple_id: str) -> dict[str, object]:
        if couple_id in failing:
            failing.discard(couple_id)
            raise StorageError(database, "injected: the database is away")
        return changes(self, couple_id)  # type: ignore[return-value]

    monkeypatch.setattr(AnswerLog, "changes", failing_changes)
    runtime = Runtime(load_settings(), clock=ManualClock(datetime(2026, 11, 25, 12, tzinfo=UTC)))
    process = SchedulerProcess(runtime, refresh=timedelta(0), sweep_every=timedelta(hours=1))
    yield process, runtime, config, failing
    runtime.close()


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    stamp = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))


def _planned_times(runtime: Runtime, couple_id: str) -> set[str]:
    """The local times of the couple's pending check-ins (``2100``)."""
    store = runtime.schedule_store()
    return {event_id.split("/")[2][-4:] for event_id, _ in store.pending(couple_id)
            if "/check_in/" in event_id}  # fmt: skip


def test_a_couple_whose_first_plan_failed_is_planned_on_the_next_pass(
    scheduled: tuple[SchedulerProcess, Runtime, Path, set[str]],
) -> None:
    """The scheduler's first pass planned couple a, then the database failed while it planned
    b. The pass failed, as it should, but the scheduler had already taken b as planned: the
    next passes planned nothing for b, and b's texts were silently never sent (the model:
    ``alex-sam/check_in/…/prompt/alex`` due, no row, nothing in the outbox)."""
    process, runtime, _, failing = scheduled
    failing.add("b")
    with pytest.raises(StorageError):
        process.step()
    process.step()
    assert _planned_times(runtime, "a") == {"2100"}
    assert _planned_times(runtime, "b") == {"2100"}, "b is never planned"


def test_an_edit_whose_replan_failed_is_replanned_on_the_next_pass(
    scheduled: tuple[SchedulerProcess, Runtime, Path, set[str]],
) -> None:
    """The same after an edit: the pass that saw b's file changed failed while re-planning
    it; the next pass found nothing new on disk and never re-planned b, so b's old texts
    kept going out (each then recorded missed by the send path) and its new ones never did."""
    process, runtime, config, failing = scheduled
    process.step()
    _write(config / "b.yaml", VALID.replace("at 21:00", "at 20:00"))
    failing.add("b")
    with pytest.raises(StorageError):
        process.step()
    process.step()
    assert _planned_times(runtime, "b") == {"2000"}, "b's edit is never planned"


def test_texts_due_during_an_outage_longer_than_the_catch_up_are_recorded_missed(
    redis_client: Redis,
) -> None:
    """The scheduler planned its usual two days ahead, then nothing ran for ten days. When it
    came back, it caught up from seven days ago: the texts of the three days before that
    were neither sent nor recorded anywhere (the model: ``alex-sam/_week/20260323/summary/
    alex``, due on the Monday, no row). Now they are recorded missed (``Scheduler.
    _miss_beyond_catch_up``), up to 30 days back."""
    c = couple({"kind": "check_in"})
    missed: list[str] = []
    store = ScheduleStore(redis_client, queue=PROMPTS_QUEUE)
    scheduler = Scheduler(store, redis_client, on_missed=missed.extend)
    start = datetime(2026, 6, 1, 12, tzinfo=UTC)
    scheduler.set_couples({c.id: c}, start)
    scheduler.tick(start)
    back = start + timedelta(days=10)
    scheduler.tick(back)
    due = {s.event_id for s in planned_sends(c, start, back)}
    lost = sorted(due - set(missed))
    assert not lost, f"{len(lost)} texts due in the outage are not recorded, from {lost[0]}"


def test_a_confirmation_handled_long_after_the_reply_is_not_texted_in_the_night(
    engine: Engine, tmp_path: Path, redis_client: Redis
) -> None:
    """Alex (quiet hours 22:00-07:00 in New York) texted HELP at 21:50; the reply was handled
    at 23:10 (the queue was backed up, or Redis was away and the reconciler re-queued it),
    and the answer reached Alex at 23:10, inside the quiet hours (the model: Jon in London,
    confirmed at 01:00). Decided: a confirmation answers the partner's own text, so within
    30 minutes of it (``Grace.confirmation``) it goes out whatever the hour; later it is
    recorded missed, never texted."""
    alex = {"name": "Alex", "phone": "+15550000001", "quiet_hours": "22:00-07:00"}
    sam = {"name": "Sam", "phone": "+15550000002"}
    c = couple({"kind": "check_in"}, partners=[alex, sam])
    clock = ManualClock(datetime(2026, 6, 2, 1, 50, tzinfo=UTC))  # 21:50 in New York
    replies = ReplyLog(engine)
    prompts = PromptLog(engine, lease=LEASE)
    outbox = tmp_path / "outbox.jsonl"
    handler = ReplyHandler(
        Couples({c.id: c}), replies, AnswerLog(engine), prompts,
        PartnerStates(engine), ConsoleSender(outbox, io.StringIO()), clock,
        ScheduleFollowUps(redis_client, ScheduleStore(redis_client, queue=PROMPTS_QUEUE)),
    )  # fmt: skip
    sid = "SM" + "3" * 32
    replies.store(sid, {"MessageSid": sid, "From": alex["phone"], "Body": "HELP"}, clock.now())
    clock.advance(timedelta(minutes=80))
    handler.handle(sid)
    assert _outbox(outbox) == []
    record = replies.get(sid)
    assert record is not None
    assert record.state is ReplyState.CONFIRMED
    row = prompts.get(f"reply/{sid}")
    assert row is not None
    assert row.state is PromptState.MISSED
    assert row.error is not None
    assert row.error.startswith("too late to answer")


def test_a_moved_occurrences_text_due_before_the_schedulers_next_pass_is_not_dropped(
    engine: Engine, redis_client: Redis
) -> None:
    """At 14:00 Sam moved tonight's date night to 14:10. The scheduler's next pass came at
    14:15 (it was restarting): it re-planned from 14:15, and the 14:10 prompt was never
    sent nor recorded (the model: ``…/reminder-3h@…Z/alex`` due as the move was handled,
    no row). Now a re-plan after a change starts from the reply's arrival (``ReplanQueue``)."""
    c = couple({"kind": "date_night", "schedule": "every friday at 19:30"})
    zone = c.partner_zone(c.partners[0])
    two_pm = datetime(2026, 6, 5, 14, 0, tzinfo=zone)  # a Friday
    store = ScheduleStore(redis_client, queue=PROMPTS_QUEUE)
    missed: list[str] = []
    scheduler = Scheduler(store, redis_client, on_missed=missed.extend,
                          changes=AnswerLog(engine).changes)  # fmt: skip
    scheduler.set_couples({c.id: c}, two_pm)
    scheduler.tick(two_pm)
    [occ_id] = {s.occurrence_id for s in planned_sends(c, two_pm, two_pm + timedelta(hours=6))}
    moved_to = two_pm + timedelta(minutes=10)
    # What ReplyHandler settles and sets in motion for "MOVE 14:10" from Sam.
    replies = ReplyLog(engine)
    sid = "SM" + "4" * 32
    replies.store(sid, {"MessageSid": sid, "From": c.partners[1].phone, "Body": "MOVE 14:10"},
                  two_pm)  # fmt: skip
    move = ChangeEffect(c.id, "date_night", occ_id, "sam", moved_to=moved_to)
    replies.settle(sid, Settlement("moved", "Moved.", c.id, "sam", "move", occ_id,
                                   changes=(move,)), two_pm)  # fmt: skip
    ScheduleFollowUps(redis_client, store).occurrence_changed(
        "occurrence.moved", c.id, occ_id, two_pm
    )
    scheduler.tick(two_pm + timedelta(minutes=15))
    raw = cast("list[bytes]", redis_client.lrange(f"dramatiq:{PROMPTS_QUEUE}", 0, -1))
    queued = {i.decode() for i in raw}
    for partner in ("alex", "sam"):
        prompt = str(SendId(occ_id, Purpose.prompt(moved_to), partner))
        assert prompt in queued or prompt in missed, f"{prompt} was dropped"


def test_a_summary_held_by_quiet_hours_is_left_to_its_delayed_message_until_then(
    engine: Engine, tmp_path: Path, redis_client: Redis
) -> None:
    """Alex's weekly summary was handled at 20:10, late (the worker had a backlog), inside
    Alex's quiet hours (20:00-20:45): held until 20:45, its message delayed till then. But
    the prompt log was not told when it would come back, so the row looked abandoned two
    minutes (one lease) later, and the reconciler re-queued it every lease until 20:45, each
    time one more delayed message (the model's runs logged "re-queued 1 pending sends whose
    message was lost" over and over). A held prompt says when (``release(..., retry_at)``)."""
    alex = {"name": "Alex", "phone": "+15550000001", "quiet_hours": "20:00-20:45"}
    sam = {"name": "Sam", "phone": "+15550000002"}
    c = couple({"kind": "check_in"}, partners=[alex, sam])
    monday = date(2026, 6, 1)
    zone = c.partner_zone(c.partners[0])
    clock = ManualClock(datetime(2026, 6, 7, 20, 10, tzinfo=zone))  # its Sunday, 19:00 + 70m
    prompts = PromptLog(engine, lease=LEASE)
    summaries = WeeklySummaries(
        Couples({c.id: c}), AnswerLog(engine), prompts, PartnerStates(engine),
        ConsoleSender(tmp_path / "outbox.jsonl", io.StringIO()), clock,
    )  # fmt: skip
    result = summaries.send(c.id, monday, "alex")["alex"]
    assert result.outcome is Outcome.HELD
    assert result.retry_at == datetime(2026, 6, 7, 20, 45, tzinfo=zone)
    stale = prompts.stale(clock.now() + LEASE + timedelta(seconds=1))
    assert not stale, f"held till 20:45, yet up for re-queueing at 20:12: {stale[0].event_id}"


def test_a_scheduler_that_missed_an_edit_another_planned_brings_the_plan_back_to_its_file(
    scheduled: tuple[SchedulerProcess, Runtime, Path, set[str]],
) -> None:
    """Two schedulers read b.yaml (21:00). It was edited to 20:00 and back within a poll:
    scheduler A saw the 20:00 version and re-planned for it, then stopped; scheduler B never
    saw it, found b.yaml as it knew it, and carried on with A's plan: the 21:00 texts A had
    dropped were never planned again (the model: ``mia-jon/affection/20260410T0800/jon/
    prompt/jon``, due, no row, after a remove and re-add that only one scheduler saw). Now a
    file read again, even unchanged, is compared with the plan's digest."""
    b_process, runtime, config, _ = scheduled
    a_process = SchedulerProcess(runtime, refresh=timedelta(0), sweep_every=timedelta(hours=1))
    a_process.step()
    b_process.step()
    _write(config / "b.yaml", VALID.replace("at 21:00", "at 20:00"))
    a_process.step()  # A re-plans for 20:00, then stops
    assert _planned_times(runtime, "b") == {"2000"}
    _write(config / "b.yaml", VALID)
    b_process.step()
    assert _planned_times(runtime, "b") == {"2100"}, "b's plan is for a file that is gone"


# --- found by the model's Twilio-like provider (tests/lifecycle/provider.py) ---------------


def _provider_path(
    engine: Engine, c: Couple, clock: ManualClock
) -> tuple[SendPath, PromptLog, FakeProvider]:
    prompts = PromptLog(engine, lease=LEASE)
    provider = FakeProvider(clock)
    path = SendPath(Couples({c.id: c}), prompts, PartnerStates(engine), provider, clock)
    return path, prompts, provider


def test_a_confirmation_whose_send_timed_out_is_looked_up_and_recorded_sent(
    engine: Engine, redis_client: Redis
) -> None:
    """Alex texted PAUSE 1d; Twilio took the confirmation but the answer timed out, so the
    send path recorded ``reply/<sid>`` unknown and the handler confirmed the reply (with no
    message sid). A minute later the reconciler re-queued the reply for its recheck; the
    handler, seeing the reply confirmed, did nothing. The model's finale found the
    confirmation still unknown half a day later, though Twilio had it: it is never looked
    up, never recorded sent, and ``hearth status`` reports it unknown for ever."""
    c = couple({"kind": "check_in"})
    clock = ManualClock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    prompts = PromptLog(engine, lease=LEASE)
    replies = ReplyLog(engine)
    provider = FakeProvider(clock)
    handler = ReplyHandler(
        Couples({c.id: c}), replies, AnswerLog(engine), prompts, PartnerStates(engine),
        provider, clock,
        ScheduleFollowUps(redis_client, ScheduleStore(redis_client, queue=PROMPTS_QUEUE)),
    )  # fmt: skip
    sid = "SM" + "3" * 32
    raw = {"MessageSid": sid, "From": c.partners[0].phone, "Body": "PAUSE 1d"}
    replies.store(sid, raw, clock.now())
    provider.next_send = SendFault.TIMEOUT
    handler.handle(sid)
    assert [m.event_id for m in provider.messages] == [f"reply/{sid}"]
    clock.advance(timedelta(minutes=2))
    broker = RedisBroker(client=redis_client)  # type: ignore[no-untyped-call]
    Reconciler(prompts, replies, broker, redis_client).sweep(clock.now())
    handler.handle(sid)  # the message the reconciler queued
    row = prompts.get(f"reply/{sid}")
    assert row is not None
    assert row.state is PromptState.SENT, f"still {row.state.value}"
    assert row.provider_id == provider.messages[0].sid


def test_a_weekly_summary_is_not_sent_to_a_number_marked_unreachable(engine: Engine) -> None:
    """Twilio refused Jon's check-in prompt with 21614 (not a mobile number): the number
    was marked unreachable and his next prompts were recorded missed, but on Monday his
    weekly summary went to that number all the same (the model: "summary sent to a number
    error 21614 marked unreachable, the file unchanged since")."""
    c = couple({"kind": "check_in"})
    alex = c.partners[0]
    monday = date(2026, 6, 1)
    clock = ManualClock(summary_at(c, alex, monday))
    partners = PartnerStates(engine)
    partners.set_unreachable(c.id, alex.key, alex.phone, 21614, clock.now() - timedelta(days=1))
    provider = FakeProvider(clock)
    summaries = WeeklySummaries(Couples({c.id: c}), AnswerLog(engine), PromptLog(engine),
                                partners, provider, clock)  # fmt: skip
    result = summaries.send(c.id, monday, alex.key)[alex.key]
    assert provider.messages == [], f"sent to the unreachable number ({result.outcome})"
    assert result.outcome is Outcome.MISSED


def test_a_claim_taken_over_after_its_text_was_edited_away_is_settled(engine: Engine) -> None:
    """A worker claimed Alex's 21:00 check-in and died before the provider call (the model's
    ``CrashPoint.CLAIMED``, with no provider fault at all). The check-in was then moved to
    22:45 in the file. Past the lease the message came back: the claim was taken over, the
    send path asked the provider about a text it could no longer render (``to`` and
    ``body`` empty), the Twilio sender answers UNKNOWN to that, and the row was recorded
    unknown; every recheck after asks the same way, so it stays unknown (the model's
    finale: still unknown, "the provider never took it", thirteen lookups with to='' and
    body=''). Expected: settled (missed, the rituals no longer include this send, or the
    provider asked by something it keeps)."""
    before = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    after = couple({"kind": "check_in", "schedule": "every day at 22:45"})
    start = datetime(2026, 6, 1, tzinfo=UTC)
    send = planned_sends(before, start, start + timedelta(days=1))[0]
    clock = ManualClock(send.at)
    path, prompts, provider = _provider_path(engine, after, clock)
    assert prompts.claim(Prompt.from_planned(send), clock.now())  # the worker that died
    clock.advance(LEASE + timedelta(seconds=1))
    path.handle(SendRequest(send.id, send.due))
    clock.advance(timedelta(minutes=2))
    path.handle(SendRequest(send.id, send.due))  # the reconciler's recheck
    row = prompts.get(send.event_id)
    assert row is not None
    assert provider.messages == []
    assert row.state is not PromptState.UNKNOWN, f"unknown: {row.error}"


def test_a_resend_lost_in_a_5xx_is_not_taken_for_the_text_it_repeats(engine: Engine) -> None:
    """Alex's check-in went out (SM…1); a minute later its receipt said undelivered 30008,
    so one resend was planned for two minutes on. Twilio answered the resend with a 5xx
    before storing it, so it was recorded unknown; at its recheck the lookup (Alex's
    number, the same words, created since the resend's row less 5 minutes) found SM…1 and
    recorded the resend sent with the first text's sid. Alex never got the resend. The
    model found the same matching with two confirmations of the same words to one number
    (the first one's take-over was recorded with the second's sid, so its receipts no
    longer find it)."""
    c = couple({"kind": "check_in"})
    start = datetime(2026, 6, 1, tzinfo=UTC)
    send = planned_sends(c, start, start + timedelta(days=1))[0]
    clock = ManualClock(send.at)
    path, prompts, provider = _provider_path(engine, c, clock)
    first = path.handle(SendRequest(send.id, send.due))
    assert first.provider_id is not None
    clock.advance(timedelta(minutes=1))
    receipt = Receipt(send.event_id, first.provider_id, DeliveryStatus.UNDELIVERED, 30008,
                      c.partner(send.partner).phone)  # fmt: skip
    Receipts(prompts, PartnerStates(engine), None).record(receipt, clock.now())
    again = SendId(send.id.occurrence_id, send.id.purpose.again(), send.partner)
    clock.advance(timedelta(minutes=2))
    provider.next_send = SendFault.FAIL_BEFORE
    assert path.handle(SendRequest(again, send.due)).outcome is Outcome.UNKNOWN
    clock.advance(timedelta(minutes=1, seconds=1))
    path.handle(SendRequest(again, send.due))  # the recheck
    row = prompts.get(str(again))
    assert row is not None
    assert row.provider_id != first.provider_id, "the resend took the first text's sid"
    assert [m.event_id for m in provider.messages] == [send.event_id, str(again)]


def test_a_text_whose_words_changed_after_a_timeout_is_found_by_the_words_it_went_out_with(
    engine: Engine,
) -> None:
    """Sam's weekly summary ("check-in 0/5") was taken by Twilio, but the answer timed out,
    so it was recorded unknown. By its recheck one more check-in had been missed, and the
    lookup asked for "check-in 0/6": no such message, so the summary went out a second time
    (the model: "alex-sam/_week/20260330/summary/sam was sent twice"). Any text's words can
    change between attempts (the other partner renamed in the file, here); the lookup matches on
    the words the earlier attempt sent."""
    rig = _words_change_after(engine, SendFault.TIMEOUT)
    result = rig.path.handle(rig.request)  # the recheck
    assert len(rig.provider.messages) == 1, "sent again with its new words"
    assert result.outcome is Outcome.SENT
    row = rig.prompts.get(rig.request.event_id)
    assert row is not None
    assert row.provider_id == rig.provider.messages[0].sid


def test_a_text_first_lost_in_a_5xx_is_recorded_with_the_words_it_finally_went_out_with(
    engine: Engine,
) -> None:
    """The other way round: the first attempt's 5xx came before Twilio stored it, the words
    changed, the recheck found nothing and sent the new words. A crash right after that
    send must be looked up by the new words, not the first attempt's."""
    rig = _words_change_after(engine, SendFault.FAIL_BEFORE)
    rig.provider.next_send = SendFault.TIMEOUT
    assert rig.path.handle(rig.request).outcome is Outcome.UNKNOWN
    rig.clock.advance(timedelta(minutes=1, seconds=1))
    assert rig.path.handle(rig.request).outcome is Outcome.SENT
    assert len(rig.provider.messages) == 1
    assert "Sammy" in rig.provider.messages[0].body
    row = rig.prompts.get(rig.request.event_id)
    assert row is not None
    assert row.words_digest == words_digest(rig.request.event_id, rig.provider.messages[0].body)


@dataclass
class _WordsRig:
    path: SendPath
    prompts: PromptLog
    provider: FakeProvider
    clock: ManualClock
    request: SendRequest


def _words_change_after(engine: Engine, fault: SendFault) -> _WordsRig:
    """Alex's check-in, its first attempt failed with ``fault`` (left unknown); then Sam is
    renamed Sammy in the file, which changes the words, and the recheck comes due."""
    before = couple({"kind": "check_in"})
    start = datetime(2026, 6, 1, tzinfo=UTC)
    send = planned_sends(before, start, start + timedelta(days=1))[0]
    clock = ManualClock(send.at)
    couples = Couples({before.id: before})
    prompts = PromptLog(engine, lease=LEASE)
    provider = FakeProvider(clock)
    path = SendPath(couples, prompts, PartnerStates(engine), provider, clock)
    request = SendRequest(send.id, send.due)
    provider.next_send = fault
    assert path.handle(request).outcome is Outcome.UNKNOWN
    renamed = [
        {"name": "Alex", "phone": "+15550000001"},
        {"name": "Sammy", "phone": "+15550000002"},
    ]
    after = couple({"kind": "check_in"}, partners=renamed)
    couples.by_id[after.id] = after  # the file was edited since
    clock.advance(timedelta(minutes=1, seconds=1))
    return _WordsRig(path, prompts, provider, clock, request)
