"""``week.ended``: each partner's summary from real answers (SQLite and PostgreSQL), sent
once through the real console sender; and the later events that trigger it."""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from service.config.loading import load_couple_file
from service.domain.clock import ManualClock
from service.domain.couples import Couple, SummaryTime
from service.domain.occurrences import occurrences
from service.domain.segments import segments
from service.domain.summaries import RitualWeek, summary_text, week_bounds
from service.scheduler.planner import later_event_message, later_events
from service.senders import ConsoleSender
from service.sending import CoupleUnreadable, Outcome, SendResult
from service.storage import (
    AnswerEffect,
    AnswerLog,
    PartnerStates,
    Prompt,
    PromptLog,
    ReplyLog,
    Settlement,
    make_engine,
    migrate,
)
from service.storage.prompt_log import PAUSED_REASON
from service.summaries import WeeklySummaries
from tests.databases import BACKENDS, database
from tests.domain.builders import couple, utc

NY = ZoneInfo("America/New_York")
ROOT = Path(__file__).resolve().parents[2]
COUPLE = couple(
    {"kind": "check_in", "schedule": "every day at 21:00"},
    {"kind": "date_night", "schedule": "every friday at 19:30"},
    {"kind": "gratitude", "schedule": "every day at 12:30"},
    {"kind": "phone_free", "schedule": "every day at 19:00"},
    timezone="America/New_York",
)
MONDAY = date(2026, 3, 2)  # the week DST starts in New York (Sunday the 8th)


class Couples:
    def get(self, couple_id: str) -> Couple | None:
        return COUPLE if couple_id == COUPLE.id else None


@pytest.fixture(params=BACKENDS)
def rig(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[WeeklySummaries, ReplyLog, PartnerStates, Path, ManualClock]]:
    with database(request.param, tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        clock = ManualClock(datetime(2026, 3, 8, 19, tzinfo=NY))  # Sunday 19:00, its time
        outbox = tmp_path / "outbox.jsonl"
        summaries = WeeklySummaries(
            Couples(), AnswerLog(engine), PromptLog(engine), PartnerStates(engine),
            ConsoleSender(outbox, io.StringIO()), clock,
        )  # fmt: skip
        try:
            yield summaries, ReplyLog(engine), PartnerStates(engine), outbox, clock
        finally:
            engine.dispose()


def _answer(replies: ReplyLog, occurrence_id: str, partner: str, action: str = "done") -> None:
    sid = "SM" + secrets.token_hex(16)
    now = datetime(2026, 3, 8, tzinfo=UTC)
    replies.store(sid, {"From": "x", "Body": "x"}, now)
    ritual = occurrence_id.split("/")[1]
    effect = AnswerEffect(COUPLE.id, ritual, occurrence_id, partner, action)
    assert replies.settle(sid, Settlement(action, None, answers=(effect,)), now)


def test_the_summary_counts_each_ritual_by_its_completion_rule(
    rig: tuple[WeeklySummaries, ReplyLog, PartnerStates, Path, ManualClock],
) -> None:
    summaries, replies, _, outbox, _ = rig
    start, end = week_bounds(COUPLE.timezone, MONDAY)
    week = occurrences(COUPLE, start, end)
    check_ins = [o.id for o in week if o.ritual == "check_in"]
    for occ in check_ins[:5]:  # both answered 5 evenings; Alex alone on the 6th
        _answer(replies, occ, "alex")
        _answer(replies, occ, "sam")
    _answer(replies, check_ins[5], "alex")
    _answer(replies, check_ins[6], "sam", "skipped")
    [date_night] = [o.id for o in week if o.ritual == "date_night"]
    _answer(replies, date_night, "sam")  # either partner completes it
    gratitude_alex = [o.id for o in week if o.ritual == "gratitude" and o.partner == "alex"]
    for occ in gratitude_alex[:3]:
        _answer(replies, occ, "alex")
    phone_free = [o.id for o in week if o.ritual == "phone_free"]
    _answer(replies, phone_free[0], "alex")
    assert _outcomes(summaries.send(COUPLE.id, MONDAY)) == {
        "alex": Outcome.SENT, "sam": Outcome.SENT,
    }  # fmt: skip
    texts = {x["partner"]: x["body"] for x in map(json.loads, outbox.read_text().splitlines())}
    # For the two of them: both had to answer a check-in. At Sunday 19:00 Saturday's is still
    # open (Alex alone so far) and Sunday's skipped, so neither counts. Gratitude is each
    # partner's own: Alex kept 3 of 6 closed days, Sam none (Sunday's are still open).
    assert texts["alex"] == (
        "Your week with Sam, Alex: check-in 5/5, date night 1/1, gratitude note 3/12, "
        "phone-free time 1x. Longest streak: check-in, 5 evenings in a row. "
        "Gratitude note slipped a little - maybe pick it up together?"
    )
    assert texts["sam"] == texts["alex"].replace("Sam, Alex", "Alex, Sam")


def test_a_summary_goes_out_once_and_never_to_an_opted_out_partner(
    rig: tuple[WeeklySummaries, ReplyLog, PartnerStates, Path, ManualClock],
) -> None:
    summaries, _, partners, outbox, clock = rig
    partners.set_opted_out(COUPLE.id, "sam", True, clock.now())
    first = _outcomes(summaries.send(COUPLE.id, MONDAY))
    assert first == {"alex": Outcome.SENT, "sam": Outcome.MISSED}
    again = _outcomes(summaries.send(COUPLE.id, MONDAY))
    assert again == {"alex": Outcome.DONE_BEFORE, "sam": Outcome.DONE_BEFORE}
    [line] = outbox.read_text().splitlines()
    assert json.loads(line)["event_id"] == "alex-sam/_week/20260302/summary/alex"
    assert summaries.send("nobody", MONDAY) == {}


def _outcomes(results: dict[str, SendResult]) -> dict[str, Outcome]:
    return {partner: result.outcome for partner, result in results.items()}


def test_a_summary_waits_for_the_end_of_the_partners_quiet_hours(
    rig: tuple[WeeklySummaries, ReplyLog, PartnerStates, Path, ManualClock],
) -> None:
    summaries, _, _, outbox, clock = rig
    quiet = couple(
        {"kind": "check_in"},
        partners=[{"name": "Alex", "phone": "+15550000001", "quiet_hours": "18:00-20:00"},
                  {"name": "Sam", "phone": "+15550000002"}],
        timezone="America/New_York",
    )  # fmt: skip
    rig_summaries = WeeklySummaries(
        _Only(quiet), summaries._answers, summaries._prompts, summaries._partners,
        ConsoleSender(outbox, io.StringIO()), clock,
    )  # fmt: skip
    clock.set(datetime(2026, 3, 8, 19, tzinfo=NY))  # Sunday 19:00, Alex's quiet hours
    results = rig_summaries.send(quiet.id, MONDAY)
    assert _outcomes(results) == {"alex": Outcome.HELD, "sam": Outcome.SENT}
    assert results["alex"].retry_at == datetime(2026, 3, 8, 20, tzinfo=NY)
    clock.set(datetime(2026, 3, 8, 20, tzinfo=NY))
    assert _outcomes(rig_summaries.send(quiet.id, MONDAY, "alex")) == {"alex": Outcome.SENT}
    # Handled only after its grace (12 h after Sunday 19:00): recorded missed, never sent.
    clock.set(datetime(2026, 3, 16, 7, 1, tzinfo=NY))
    assert _outcomes(rig_summaries.send(quiet.id, date(2026, 3, 9), "sam")) == {
        "sam": Outcome.MISSED
    }
    partners = [json.loads(line)["partner"] for line in outbox.read_text().splitlines()]
    assert partners == ["sam", "alex"]


class _Only:
    def __init__(self, c: Couple) -> None:
        self.c = c

    def get(self, couple_id: str) -> Couple | None:
        return self.c if couple_id == self.c.id else None


def test_later_events_fire_at_local_times_across_daylight_saving() -> None:
    found = later_events(COUPLE, utc(2026, 3, 1), utc(2026, 3, 17))
    weeks = [(e.event_id, e.fire_at, e.actor, e.kwargs["week"]) for e in found
             if e.actor == "week.ended"]  # fmt: skip
    assert weeks == [
        (f"alex-sam/_week/{week:%Y%m%d}/summary/{partner}", datetime(*day, 19, tzinfo=NY),
         "week.ended", week.isoformat())
        for week, day in ((date(2026, 2, 23), (2026, 3, 1)), (date(2026, 3, 2), (2026, 3, 8)),
                          (date(2026, 3, 9), (2026, 3, 15)))
        for partner in ("alex", "sam")
    ]  # fmt: skip
    # A couple may send it on another day: a Monday's covers the week that just ended.
    monday_9 = COUPLE.model_copy(update={"summary": SummaryTime(day=0, at=time(9, 0))})
    mondays = [(e.kwargs["week"], e.fire_at) for e in
               later_events(monday_9, utc(2026, 3, 1), utc(2026, 3, 17))
               if e.actor == "week.ended" and e.kwargs["partner"] == "alex"]  # fmt: skip
    assert mondays == [("2026-02-23", datetime(2026, 3, 2, 9, tzinfo=NY)),
                       ("2026-03-02", datetime(2026, 3, 9, 9, tzinfo=NY)),
                       ("2026-03-09", datetime(2026, 3, 16, 9, tzinfo=NY))]  # fmt: skip
    feeds = [e for e in found if e.actor == "feed.render"]
    assert len(feeds) == 16  # one a night at 03:00 local, the couple has calendar rituals
    assert {e.fire_at.astimezone(NY).hour for e in feeds} == {3}
    # An id planned before summaries were per partner still runs (both partners).
    assert later_event_message("alex-sam/_week/20260302") == (
        "week.ended",
        {"couple": "alex-sam", "week": "2026-03-02", "event_id": "alex-sam/_week/20260302"},
    )
    assert later_event_message("alex-sam/feed/20260302") == (
        "feed.render", {"couple": "alex-sam", "event_id": "alex-sam/feed/20260302"},
    )  # fmt: skip
    no_calendar = couple({"kind": "check_in"})
    assert {e.actor for e in later_events(no_calendar, utc(2026, 3, 1), utc(2026, 3, 17))} == {
        "week.ended"
    }


def test_mia_and_jons_summary_reaches_jon_after_his_quiet_hours_in_london() -> None:
    mia_and_jon = load_couple_file(ROOT / "config" / "couples" / "mia-and-jon.yaml")
    # In November Sydney is UTC+11 and London UTC+0: Sunday 19:00 in Sydney (the default)
    # is 08:00 on Sunday in London, outside Jon's 23:30-07:30.
    found = [e for e in later_events(mia_and_jon, utc(2026, 11, 28), utc(2026, 12, 1))
             if e.actor == "week.ended"]  # fmt: skip
    by_partner = {e.kwargs["partner"]: e.fire_at for e in found}
    sydney, london = ZoneInfo("Australia/Sydney"), ZoneInfo("Europe/London")
    assert by_partner["mia"].astimezone(sydney) == datetime(2026, 11, 29, 19, tzinfo=sydney)
    assert by_partner["jon"] == by_partner["mia"]
    for e in found:
        partner = mia_and_jon.partner(e.kwargs["partner"])
        assert partner.quiet_hours is not None
        zone = mia_and_jon.partner_zone(partner)
        assert partner.quiet_hours.release(e.fire_at, zone) == e.fire_at, "never in quiet hours"
    # Set to Mondays at 09:00: in June 09:00 Sydney (UTC+10) is 00:00 in London (UTC+1),
    # Jon's quiet hours, so his summary waits until 07:30 London.
    mondays = mia_and_jon.model_copy(update={"summary": SummaryTime(day=0, at=time(9, 0))})
    june = [e for e in later_events(mondays, utc(2026, 6, 28), utc(2026, 7, 1))
            if e.actor == "week.ended"]  # fmt: skip
    jon = next(e for e in june if e.kwargs["partner"] == "jon")
    assert jon.fire_at.astimezone(london) == datetime(2026, 6, 29, 7, 30, tzinfo=london)


def test_a_week_with_a_daylight_saving_change_is_167_hours() -> None:
    start, end = week_bounds("America/New_York", MONDAY)
    assert end - start == timedelta(hours=167)


def test_summary_texts_stay_within_two_segments() -> None:
    many = [RitualWeek(f"ritual number {i}", 7, 3) for i in range(40)]
    text = summary_text("Alexandra", "Samuel", many)
    assert len(text) <= 320
    assert segments(text) <= 2
    assert ", and more. Ritual number 0 slipped a little" in text
    assert summary_text("A", "B", []) == "Your week with B, A: a quiet one. New week, fresh start."
    full = summary_text("A", "B", [RitualWeek("check-in", 7, 7, streak=9, unit="evenings")])
    assert full == (
        "Your week with B, A: check-in 7/7. Longest streak: check-in, 9 evenings in a row. "
        "Every one of them - well done."
    )
    # Names outside GSM-7 make every character cost more: still two segments at most.
    wide = summary_text("Zoë 🌙" * 3, "Łukasz", many)
    assert segments(wide) <= 2


class UnreadableCouples:
    """A worker's couple source while the couple's file is broken and no good version of it
    could be read (Redis away as the worker started)."""

    def __init__(self) -> None:
        self.readable = False
        self.refreshed = 0

    def get(self, couple_id: str) -> Couple | None:
        return COUPLE if self.readable and couple_id == COUPLE.id else None

    def refresh_now(self) -> None:
        self.refreshed += 1

    def unreadable(self, couple_id: str) -> bool:
        return not self.readable and couple_id == COUPLE.id


def test_a_summary_waits_for_an_unreadable_file_rather_than_vanish(
    rig: tuple[WeeklySummaries, ReplyLog, PartnerStates, Path, ManualClock],
) -> None:
    _, _, partners, outbox, clock = rig
    couples = UnreadableCouples()
    waiting = WeeklySummaries(
        couples, AnswerLog(partners.engine), PromptLog(partners.engine), partners,
        ConsoleSender(outbox, io.StringIO()), clock,
    )  # fmt: skip
    with pytest.raises(CoupleUnreadable, match="cannot be read yet"):
        waiting.send(COUPLE.id, MONDAY)
    assert couples.refreshed == 1
    assert not outbox.exists()
    assert waiting.send("someone-else", MONDAY) == {}  # a couple that is gone: nothing to do
    couples.readable = True  # the file is mended, or its last good version readable again
    assert _outcomes(waiting.send(COUPLE.id, MONDAY)) == {
        "alex": Outcome.SENT, "sam": Outcome.SENT}  # fmt: skip


def test_a_check_in_a_pause_held_counts_neither_kept_nor_missed(
    rig: tuple[WeeklySummaries, ReplyLog, PartnerStates, Path, ManualClock],
) -> None:
    summaries, replies, partners, outbox, _ = rig
    start, end = week_bounds(COUPLE.timezone, MONDAY)
    check_ins = [o for o in occurrences(COUPLE, start, end) if o.ritual == "check_in"]
    for occ in check_ins[:5]:
        _answer(replies, occ.id, "alex")
        _answer(replies, occ.id, "sam")
    prompts = PromptLog(partners.engine)
    for occ in check_ins[5:]:  # a pause held these: the send path recorded them missed
        for who in ("alex", "sam"):
            held = Prompt(f"{occ.id}/prompt/{who}", occ.id, COUPLE.id, "check_in", who,
                          "prompt", occ.start)  # fmt: skip
            assert prompts.claim(held, occ.start)
            assert prompts.mark_missed(held.event_id, f"{PAUSED_REASON} until Monday", occ.start)
    summaries.send(COUPLE.id, MONDAY)
    texts = {x["partner"]: x["body"] for x in map(json.loads, outbox.read_text().splitlines())}
    assert "check-in 5/5" in texts["alex"]
