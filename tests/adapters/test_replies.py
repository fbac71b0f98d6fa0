"""Replies end to end below HTTP: stored raw, handled by ``ReplyHandler`` on a real log (SQLite
and PostgreSQL), real Redis for follow-ups, the real console sender and send path."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.domain import confirmations as say
from service.domain.clock import ManualClock
from service.domain.couples import Couple, Partner
from service.domain.occurrences import occurrences
from service.domain.sends import PlannedSend, planned_sends
from service.replying import ReplyHandler
from service.scheduler import ScheduleStore
from service.scheduler.follow_ups import ScheduleFollowUps
from service.scheduler.planner import PROMPTS_QUEUE, Scheduler
from service.scheduler.replans import ReplanQueue
from service.senders import ConsoleSender, Lookup, Outgoing, PermanentDeliveryError, SentBefore
from service.sending import Outcome, SendPath, SendRequest
from service.storage import (
    AnswerLog,
    PartnerStates,
    PromptLog,
    ReplyLog,
    ReplyRecord,
    ReplyState,
    make_engine,
    migrate,
)
from tests.databases import BACKENDS, database
from tests.domain.builders import couple, utc

if TYPE_CHECKING:
    from redis import Redis

ALEX = "+15550000001"
SAM = "+15550000002"
STRANGER = "+15559999999"
NY = "America/New_York"

COUPLE = couple(
    {"kind": "check_in", "schedule": "every day at 21:00"},
    {"kind": "date_night", "schedule": "every friday at 19:30"},
    {"kind": "phone_free", "schedule": "every day at 19:00"},
    {"kind": "gratitude", "schedule": "every day at 12:30"},
    timezone=NY,
)


@dataclass
class Couples:
    by_id: dict[str, Couple] = field(default_factory=dict)

    def get(self, couple_id: str) -> Couple | None:
        return self.by_id.get(couple_id)

    def by_phone(self, phone: str) -> list[tuple[Couple, Partner]]:
        return [(c, p) for c in self.by_id.values() for p in c.partners if p.phone == phone]


@dataclass
class Rig:
    handler: ReplyHandler
    send_path: SendPath
    replies: ReplyLog
    answers: AnswerLog
    partners: PartnerStates
    couples: Couples
    clock: ManualClock
    outbox: Path
    redis: Redis
    store: ScheduleStore

    def deliver(self, ritual: str, start: datetime, end: datetime) -> dict[str, Outcome]:
        """Run the send path for the ritual's sends due in [start, end), each at its time."""
        c = self.couples.by_id[COUPLE.id]
        changes = self.answers.changes(c.id)
        out = {}
        for send in planned_sends(c, start, end, changes):
            if send.ritual != ritual:
                continue
            self.clock.set(send.at)
            request = SendRequest(send.id, send.due)
            out[send.event_id] = self.send_path.handle(request).outcome
        return out

    def text(self, phone: str, body: str, sid: str | None = None) -> ReplyRecord:
        sid = sid or "SM" + secrets.token_hex(16)
        self.replies.store(sid, {"MessageSid": sid, "From": phone, "Body": body}, self.clock.now())
        record = self.handler.handle(sid)
        assert record is not None
        return record

    def answer(self, record: ReplyRecord) -> str | None:
        """What Hearth texted back to this reply (None: nothing)."""
        found = [x for x in self.lines() if x["event_id"] == f"reply/{record.message_sid}"]
        assert len(found) <= 1, "a reply is answered once"
        return found[0]["body"] if found else None

    def lines(self) -> list[dict[str, str]]:
        if not self.outbox.exists():
            return []
        return [json.loads(x) for x in self.outbox.read_text("utf-8").splitlines()]


@pytest.fixture(params=BACKENDS)
def rig(request: pytest.FixtureRequest, tmp_path: Path, redis_client: Redis) -> Iterator[Rig]:
    with database(request.param, tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        try:
            yield _rig(engine, tmp_path, redis_client)
        finally:
            engine.dispose()


def _rig(engine: object, tmp_path: Path, redis: Redis) -> Rig:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    clock = ManualClock(utc(2026, 3, 2, 12))
    outbox = tmp_path / "outbox.jsonl"
    sender = ConsoleSender(outbox, io.StringIO())
    couples = Couples({COUPLE.id: COUPLE})
    replies, answers = ReplyLog(engine), AnswerLog(engine)
    prompts, partners = PromptLog(engine), PartnerStates(engine)
    store = ScheduleStore(redis, queue=PROMPTS_QUEUE)
    handler = ReplyHandler(
        couples, replies, answers, prompts, partners, sender, clock,
        ScheduleFollowUps(redis, store),
    )  # fmt: skip
    send_path = SendPath(couples, prompts, partners, sender, clock, answers=answers)
    return Rig(handler, send_path, replies, answers, partners, couples, clock, outbox, redis,
               store)  # fmt: skip


def _day(day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A local New York instant in March 2026 (DST starts on Sunday 8 March)."""
    from zoneinfo import ZoneInfo

    return datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo(NY))


def test_check_in_is_done_when_both_answer_and_the_streak_grows(rig: Rig) -> None:
    for day in (2, 3, 4):
        sent = rig.deliver("check_in", _day(day, 20), _day(day, 22))
        assert list(sent.values()) == [Outcome.SENT, Outcome.SENT]
        rig.clock.set(_day(day, 21, 10))
        first = rig.text(ALEX, "done!")
        assert rig.answer(first) == "Logged your check-in. Waiting on Sam's."
        second = rig.text(SAM, "Did it 🎉")
        streak = "" if day == 2 else f" {day - 1} evenings in a row."
        assert rig.answer(second) == f"Logged your check-in - you both did it.{streak}"
        assert second.occurrence_id == f"alex-sam/check_in/202603{day:02d}T2100"


def test_free_text_is_a_journal_entry_for_a_check_in_and_help_elsewhere(rig: Rig) -> None:
    rig.deliver("check_in", _day(2, 20), _day(2, 22))
    rig.clock.set(_day(2, 21, 5))
    record = rig.text(ALEX, "  Long walk by the river 🌳, felt close again ")
    assert record.outcome == "journal"
    assert rig.answer(record) == "Saved your check-in note. Waiting on Sam's."
    [entry] = rig.answers.journal(COUPLE.id)
    assert (entry.partner, entry.note) == ("alex", "Long walk by the river 🌳, felt close again")
    rig.deliver("phone_free", _day(3, 18), _day(3, 20))
    rig.clock.set(_day(3, 19, 30))
    other = rig.text(ALEX, "what a lovely evening")
    assert other.outcome == "not-understood"
    assert rig.answer(other) == say.HELP


def test_the_same_message_sid_twice_has_the_effect_of_once(rig: Rig) -> None:
    rig.deliver("check_in", _day(2, 20), _day(2, 22))
    rig.clock.set(_day(2, 21, 5))
    sid = "SM" + "1" * 32
    raw = {"MessageSid": sid, "From": ALEX, "Body": "done"}
    assert rig.replies.store(sid, raw, rig.clock.now())
    assert not rig.replies.store(sid, raw, rig.clock.now())
    first = rig.handler.handle(sid)
    again = rig.handler.handle(sid)
    assert first is not None
    assert again is not None
    assert again.state is ReplyState.CONFIRMED
    answered = [x for x in rig.lines() if x["event_id"] == f"reply/{sid}"]
    assert len(answered) == 1
    state = rig.answers.of(["alex-sam/check_in/20260302T2100"])["alex-sam/check_in/20260302T2100"]
    assert state.done_by == {"alex"}


def test_stop_silences_every_text_until_start(rig: Rig) -> None:
    stop = rig.text(ALEX, "STOP")
    assert rig.answer(stop) == say.OPTED_OUT
    assert rig.partners.get(COUPLE.id, "alex").opted_out
    sent = rig.deliver("check_in", _day(2, 20), _day(2, 22))
    assert sent == {
        "alex-sam/check_in/20260302T2100/prompt/alex": Outcome.MISSED,
        "alex-sam/check_in/20260302T2100/prompt/sam": Outcome.SENT,
    }
    rig.clock.set(_day(2, 21, 5))
    quiet = rig.text(ALEX, "done")
    assert rig.answer(quiet) is None, "nothing goes to a number that opted out"
    start = rig.text(ALEX, "Start")
    assert rig.answer(start) == say.OPTED_IN
    sent = rig.deliver("check_in", _day(3, 20), _day(3, 22))
    assert set(sent.values()) == {Outcome.SENT}


def test_stop_with_more_words_is_not_an_opt_out(rig: Rig) -> None:
    record = rig.text(ALEX, "stop texting me about dishes")
    assert not rig.partners.get(COUPLE.id, "alex").opted_out
    assert record.outcome == "nothing-open"


def test_help_and_an_unknown_number(rig: Rig) -> None:
    assert rig.answer(rig.text(SAM, "help")) == say.HELP
    unknown = rig.text(STRANGER, "done")
    assert (unknown.outcome, unknown.couple, unknown.partner) == ("unknown-number", None, None)
    assert rig.answer(unknown) == say.UNKNOWN_NUMBER


def test_keywords_are_left_to_twilio_when_it_answers_them(rig: Rig) -> None:
    rig.handler._keyword_replies = False  # as with Twilio's Advanced Opt-Out on
    stop = rig.text(ALEX, "unsubscribe")
    assert rig.partners.get(COUPLE.id, "alex").opted_out
    assert rig.answer(stop) is None
    assert rig.answer(rig.text(ALEX, "info")) is None


def test_snooze_sends_the_prompt_again_later(rig: Rig) -> None:
    rig.deliver("check_in", _day(2, 20), _day(2, 22))
    rig.clock.set(_day(2, 21, 2))
    record = rig.text(ALEX, "snooze 1h")
    assert rig.answer(record) == "OK, I'll remind you about your check-in at 22:02."
    rig.handler.handle(record.message_sid)  # a redelivery schedules nothing more
    pending = [(e, at) for e, at in rig.store.pending(COUPLE.id) if "/snooze-" in e]
    assert len(pending) == 1
    event_id, at = pending[0]
    assert at == _day(2, 22, 2).astimezone(UTC)
    rig.clock.set(at)
    result = rig.send_path.handle(SendRequest.parse(event_id, at))
    assert result.outcome is Outcome.SENT
    assert rig.lines()[-1]["body"].startswith("Hi Alex, check-in time.")


def test_pause_holds_prompts_and_resume_restarts_them(rig: Rig) -> None:
    record = rig.text(SAM, "PAUSE 2d")
    assert (
        rig.answer(record) == "Paused until Wed 4 Mar, 07:00. Reply RESUME to start again sooner."
    )
    sent = rig.deliver("check_in", _day(2, 20), _day(2, 22))
    assert sent["alex-sam/check_in/20260302T2100/prompt/sam"] is Outcome.MISSED
    assert sent["alex-sam/check_in/20260302T2100/prompt/alex"] is Outcome.SENT
    rig.text(SAM, "resume")
    sent = rig.deliver("check_in", _day(3, 20), _day(3, 22))
    assert sent["alex-sam/check_in/20260303T2100/prompt/sam"] is Outcome.SENT


def test_skipping_a_date_night_drops_its_remaining_sends(rig: Rig) -> None:
    # Friday 6 March, 19:30: the 2-day reminder goes out on Wednesday.
    occ = "alex-sam/date_night/20260306T1930"
    sent = rig.deliver("date_night", _day(4, 0), _day(5, 0))
    assert set(sent) == {f"{occ}/reminder-2d/alex", f"{occ}/reminder-2d/sam"}
    rig.clock.set(_day(4, 20))
    record = rig.text(SAM, "skip, working late")
    assert record.occurrence_id == occ
    assert (
        rig.answer(record) == "Skipped date night on Fri 6 Mar, 19:30. Your calendar will drop it."
    )
    assert ReplanQueue(rig.redis).is_waiting(COUPLE.id)
    assert rig.answers.changes(COUPLE.id)[occ].skipped
    # The scheduler re-plans the couple without it; a message already queued is refused.
    scheduler = Scheduler(rig.store, rig.redis, changes=rig.answers.changes)
    scheduler.set_couples({COUPLE.id: COUPLE}, rig.clock.now())
    scheduler.tick(rig.clock.now())
    assert not ReplanQueue(rig.redis).is_waiting(COUPLE.id)
    assert not [e for e, _ in rig.store.pending(COUPLE.id) if e.startswith(occ)]
    at = _day(6, 16, 30)
    rig.clock.set(at)
    late = rig.send_path.handle(SendRequest.parse(f"{occ}/reminder-3h/alex", at))
    assert (late.outcome, late.detail) == (Outcome.MISSED, "the occurrence was skipped")


def test_move_across_the_spring_forward_change(rig: Rig) -> None:
    occ = "alex-sam/date_night/20260306T1930"
    rig.deliver("date_night", _day(4, 0), _day(5, 0))
    rig.clock.set(_day(4, 20))
    record = rig.text(ALEX, "MOVE sun 19:30")
    assert rig.answer(record) == "Moved date night to Sun 8 Mar, 19:30. Your calendar will update."
    moved_to = rig.answers.changes(COUPLE.id)[occ].moved_to
    # 19:30 on the first day of EDT is 23:30 UTC (it was 00:30 UTC the Friday before).
    assert moved_to == utc(2026, 3, 8, 23, 30)
    changes = rig.answers.changes(COUPLE.id)
    [moved] = [o for o in occurrences(COUPLE, _day(5), _day(10), changes) if o.id == occ]
    assert (moved.start, moved.moved_from) == (_day(8, 19, 30), _day(6, 19, 30))
    sends = {s.event_id: s.at for s in planned_sends(COUPLE, _day(5), _day(10), changes)
             if s.occurrence_id == occ}  # fmt: skip
    assert sends == {
        f"{occ}/reminder-2d@20260308T2330Z/alex": _day(6, 19, 30),
        f"{occ}/reminder-2d@20260308T2330Z/sam": _day(6, 19, 30),
        f"{occ}/reminder-3h@20260308T2330Z/alex": _day(8, 16, 30),
        f"{occ}/reminder-3h@20260308T2330Z/sam": _day(8, 16, 30),
        f"{occ}/prompt@20260308T2330Z/alex": _day(8, 19, 30),
        f"{occ}/prompt@20260308T2330Z/sam": _day(8, 19, 30),
    }
    old = rig.send_path.handle(SendRequest.parse(f"{occ}/prompt/alex", _day(6, 19, 30)))
    assert (old.outcome, old.detail) == (Outcome.MISSED, "the occurrence was moved")
    new = rig.deliver("date_night", _day(8, 19), _day(8, 20))
    assert set(new.values()) == {Outcome.SENT}


def test_move_needs_a_calendar_ritual_and_a_readable_time(rig: Rig) -> None:
    rig.deliver("check_in", _day(2, 20), _day(2, 22))
    rig.clock.set(_day(2, 21, 5))
    record = rig.text(ALEX, "#check_in move tomorrow 20:00")
    assert rig.answer(record) == say.not_movable("check-in")
    rig.deliver("date_night", _day(4, 0), _day(5, 0))
    rig.clock.set(_day(4, 20))
    unreadable = rig.text(ALEX, "move blorp")
    assert unreadable.outcome == "problem"
    assert "blorp" in (rig.answer(unreadable) or "")
    assert not rig.answers.changes(COUPLE.id)


def test_a_tag_picks_another_open_ritual(rig: Rig) -> None:
    rig.deliver("date_night", _day(4, 0), _day(5, 0))
    rig.deliver("check_in", _day(4, 20), _day(4, 22))
    rig.clock.set(_day(4, 21, 30))
    plain = rig.text(ALEX, "done")
    assert plain.occurrence_id == "alex-sam/check_in/20260304T2100", "the newest open text"
    tagged = rig.text(ALEX, "#date-night done, booked the table")
    assert tagged.occurrence_id == "alex-sam/date_night/20260306T1930"
    assert rig.answer(tagged) == "Logged your date night."
    nothing = rig.text(SAM, "#datenight done")
    assert rig.answer(nothing) == say.already("date night"), "either partner completes it"
    unknown = rig.text(SAM, "#yoga done")
    assert rig.answer(unknown) == say.no_such_ritual("yoga", [r.id for r in COUPLE.rituals])


def test_each_partner_counts_alone_for_gratitude(rig: Rig) -> None:
    rig.deliver("gratitude", _day(2, 12), _day(2, 13))
    rig.clock.set(_day(2, 13))
    assert rig.answer(rig.text(ALEX, "✅")) == "Logged your gratitude note."
    record = rig.text(SAM, "done")
    assert rig.answer(record) == "Logged your gratitude note."
    assert record.occurrence_id == "alex-sam/gratitude/20260302T1230/sam"


def test_nothing_open_gets_a_helpful_answer(rig: Rig) -> None:
    record = rig.text(ALEX, "done")
    assert (record.outcome, rig.answer(record)) == ("nothing-open", say.NOTHING_OPEN)
    bad = rig.text(ALEX, "snooze 3 days")
    assert bad.outcome == "problem"
    assert "SNOOZE" in (rig.answer(bad) or "")


def test_an_answered_partner_gets_no_more_reminders(rig: Rig) -> None:
    occ = "alex-sam/date_night/20260306T1930"
    rig.deliver("date_night", _day(4, 0), _day(5, 0))
    rig.clock.set(_day(4, 20))
    rig.text(ALEX, "done")  # planned already; either partner completes date night
    at = _day(6, 16, 30)
    rig.clock.set(at)
    later = rig.send_path.handle(SendRequest.parse(f"{occ}/reminder-3h/sam", at))
    assert (later.outcome, later.detail) == (Outcome.MISSED, "already done")


def test_any_text_whatever_gets_an_answer(tmp_path_factory: pytest.TempPathFactory,
                                          redis_client: Redis) -> None:  # fmt: skip
    directory = tmp_path_factory.mktemp("anytext")
    url = f"sqlite:///{directory / 'hearth.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    try:
        r = _rig(engine, directory, redis_client)
        r.deliver("check_in", _day(2, 20), _day(2, 22))
        r.deliver("date_night", _day(4, 0), _day(5, 0))
        r.clock.set(_day(4, 20))

        @settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
        @given(body=st.text(max_size=300), phone=st.sampled_from([ALEX, SAM, STRANGER]))
        def check(body: str, phone: str) -> None:
            sid = "SM" + secrets.token_hex(16)
            record = ReplyRecord(sid, {"From": phone, "Body": body}, ReplyState.RECEIVED,
                                 r.clock.now(), None, None, None, None, None, None)  # fmt: skip
            settled = r.handler.decide(record, r.clock.now())
            assert settled.outcome
            keyword = settled.outcome in ("opted-out", "opted-in", "help")
            assert settled.confirmation or keyword
            assert settled.confirmation is None or len(settled.confirmation) <= 320

        check()
    finally:
        engine.dispose()


def test_a_snooze_handled_late_is_timed_from_its_arrival(rig: Rig) -> None:
    rig.deliver("check_in", _day(2, 20), _day(2, 22))
    arrived = _day(2, 21, 2)
    rig.clock.set(arrived)
    sid = "SM" + "5" * 32
    rig.replies.store(sid, {"MessageSid": sid, "From": ALEX, "Body": "later 1h"}, arrived)
    rig.clock.set(arrived + timedelta(minutes=20))  # the worker was busy
    record = rig.handler.handle(sid)
    assert record is not None
    assert rig.answer(record) == "OK, I'll remind you about your check-in at 22:02."
    [(_, at)] = [(e, at) for e, at in rig.store.pending(COUPLE.id) if "/snooze-" in e]
    assert at == (arrived + timedelta(hours=1)).astimezone(UTC)


def test_a_confirmation_the_carrier_refuses_is_not_retried_forever(rig: Rig) -> None:
    class Refusing:
        def send(self, text: Outgoing, now: datetime) -> str:
            raise PermanentDeliveryError("21610: unsubscribed recipient", 21610, opted_out=True)

    rig.handler._sender = Refusing()
    record = rig.text(ALEX, "help")
    after = rig.replies.get(record.message_sid)
    assert after is not None
    assert after.state is ReplyState.CONFIRMED
    assert rig.partners.get(COUPLE.id, "alex").opted_out, "the carrier's opt-out is mirrored"


# --- crashes and slow handlers ([E] 9, 10) ------------------------------------------------


class _Died(Exception):
    """A worker dying at this point: the handler stops, nothing after it runs."""


def test_a_second_handler_beside_a_slow_first_sends_no_second_confirmation(rig: Rig) -> None:
    rig.deliver("check_in", _day(2, 20), _day(2, 22))
    rig.clock.set(_day(2, 21, 5))
    sid = "SM" + "6" * 32
    rig.replies.store(sid, {"MessageSid": sid, "From": ALEX, "Body": "done"}, rig.clock.now())
    real = rig.handler._sender
    second: list[ReplyRecord | None] = []

    class Slow:
        """The first handler's provider call, during which the re-queue sweep runs another."""

        def send(self, text: Outgoing, now: datetime) -> str:
            rig.handler._sender = real
            second.append(rig.handler.handle(sid))
            return real.send(text, now)

        def lookup(
            self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
        ) -> SentBefore | Lookup:
            return real.lookup(text, since)

    rig.handler._sender = Slow()
    rig.handler.handle(sid)
    record = rig.replies.get(sid)
    assert record is not None
    assert record.state is ReplyState.CONFIRMED
    assert [x["event_id"] for x in rig.lines()].count(f"reply/{sid}") == 1
    assert len(second) == 1
    assert second[0] is not None


def test_a_reply_whose_follow_ups_died_after_settling_is_finished_by_the_sweep(rig: Rig) -> None:
    rig.deliver("check_in", _day(2, 20), _day(2, 22))
    arrived = _day(2, 21, 2)
    rig.clock.set(arrived)
    sid = "SM" + "7" * 32
    rig.replies.store(sid, {"MessageSid": sid, "From": ALEX, "Body": "snooze 1h"}, arrived)
    follow_ups = rig.handler._follow_ups

    class Dying:
        def occurrence_changed(
            self, event: str, couple_id: str, occurrence_id: str, since: datetime
        ) -> None:
            raise _Died

        def snooze(self, send: PlannedSend) -> None:
            raise _Died

    rig.handler._follow_ups = Dying()
    with pytest.raises(_Died):
        rig.handler.handle(sid)
    rig.handler._follow_ups = follow_ups
    record = rig.replies.get(sid)
    assert record is not None
    assert record.state is ReplyState.HANDLED  # settled, but no snooze and no confirmation
    assert not [e for e, _ in rig.store.pending(COUPLE.id) if "/snooze-" in e]
    # The scheduler's sweep finds it unfinished and queues it again; handling it finishes it.
    assert sid in rig.replies.unfinished(arrived + timedelta(minutes=3))
    rig.handler.handle(sid)
    assert [e for e, _ in rig.store.pending(COUPLE.id) if "/snooze-" in e]
    assert rig.answer(record) is not None
    assert sid not in rig.replies.unfinished(arrived + timedelta(minutes=3))


def test_a_confirmation_whose_handler_died_after_the_provider_call_is_not_sent_again(
    rig: Rig,
) -> None:
    rig.deliver("check_in", _day(2, 20), _day(2, 22))
    rig.clock.set(_day(2, 21, 5))
    sid = "SM" + "8" * 32
    rig.replies.store(sid, {"MessageSid": sid, "From": ALEX, "Body": "done"}, rig.clock.now())
    real = rig.handler._sender

    class DiesAfterSending:
        def send(self, text: Outgoing, now: datetime) -> str:
            real.send(text, now)
            raise _Died

        def lookup(
            self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
        ) -> SentBefore | Lookup:
            return real.lookup(text, since)

    rig.handler._sender = DiesAfterSending()
    with pytest.raises(_Died):
        rig.handler.handle(sid)
    rig.handler._sender = real
    rig.handler.handle(sid)  # within the lease: another handler may be sending; it waits
    assert [x["event_id"] for x in rig.lines()].count(f"reply/{sid}") == 1
    rig.clock.advance(timedelta(minutes=6))  # past the lease: taken over, the outbox asked
    rig.handler.handle(sid)
    record = rig.replies.get(sid)
    assert record is not None
    assert record.state is ReplyState.CONFIRMED
    assert [x["event_id"] for x in rig.lines()].count(f"reply/{sid}") == 1
