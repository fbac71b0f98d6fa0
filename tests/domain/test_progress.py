"""Progress: cell states, schedule-following streaks and the Loop-style strength score."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.changes import Change
from service.domain.progress import (
    Answered,
    Cell,
    Label,
    Span,
    State,
    cells,
    current_streak,
    frequency,
    score,
    streak,
    strength,
)
from service.domain.recurrence import EPOCH, local_starts
from service.domain.schedules import Recurrence, parse_schedule
from service.domain.wallclock import resolve
from tests.domain.builders import couple

DAILY = parse_schedule("every day at 21:00")
MWF = parse_schedule("mon, wed, fri at 20:00")
WEEKLY = parse_schedule("every sunday at 19:00")
UTC_ZONE = ZoneInfo("UTC")

states = st.sampled_from(list(State))
decided = st.sampled_from([State.DONE, State.MISSED])
neutral = st.sampled_from([State.SKIPPED, State.PAUSED])


def series(rec: Recurrence, marks: list[State], first: date = date(2026, 1, 5)) -> list[Cell]:
    """Cells of ``rec`` from ``first`` on, one per mark (a plain local series, UTC instants)."""
    after = datetime.combine(first, time())
    walls = local_starts(rec, EPOCH, after, after + timedelta(days=10 * len(marks) + 30))
    return [
        Cell(f"c/r/{w:%Y%m%dT%H%M}", w, w.replace(tzinfo=UTC_ZONE), s)
        for w, s in zip(walls, marks, strict=False)
    ]


def last_day(found: list[Cell], rec: Recurrence) -> date:
    """The day before the occurrence after ``found``'s last: its slot ends there."""
    after = found[-1].wall + timedelta(minutes=1)
    following = next(local_starts(rec, EPOCH, after, after + timedelta(days=400)))
    return following.date() - timedelta(days=1)


# --- streaks -----------------------------------------------------------------------------


@given(st.lists(states, max_size=60))
def test_a_streak_never_exceeds_the_done_occurrences(marks: list[State]) -> None:
    assert 0 <= streak(marks) <= marks.count(State.DONE)


@given(st.lists(states, max_size=40), st.data())
def test_a_skip_pause_or_open_occurrence_inserted_anywhere_never_changes_the_streak(
    marks: list[State], data: st.DataObject
) -> None:
    at = data.draw(st.integers(0, len(marks)))
    extra = data.draw(st.sampled_from([State.SKIPPED, State.PAUSED, State.UPCOMING]))
    assert streak([*marks[:at], extra, *marks[at:]]) == streak(marks)


def test_a_streak_counts_back_from_the_newest_and_stops_at_a_miss() -> None:
    marks = [State.UPCOMING, State.DONE, State.SKIPPED, State.DONE, State.MISSED, State.DONE]
    assert streak(marks) == 2


def test_a_mon_wed_fri_ritual_is_not_broken_on_a_tuesday() -> None:
    c = couple({"kind": "gratitude", "schedule": "mon, wed, fri at 20:00"})
    ritual = c.rituals[0]
    now = resolve(datetime(2026, 3, 13, 22, 0), ZoneInfo("America/New_York"))  # a Friday
    every = cells(c, ritual, now, weeks=2)
    assert {cell.wall.weekday() for cell in every} == {0, 2, 4}
    done = {cell.occurrence: Answered(frozenset({"alex", "sam"})) for cell in every}
    kept = cells(c, ritual, now, weeks=2, answers=done)
    past = [cell for cell in kept if cell.start <= now]
    assert current_streak(kept) == len(past) == 12  # six days, each partner's own time
    alex = cells(c, ritual, now, weeks=2, answers=done, viewer="alex")
    assert current_streak(alex) == 6


def test_the_open_occurrence_does_not_break_the_streak_until_it_closes() -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    ritual = c.rituals[0]
    tz = ZoneInfo("America/New_York")
    now = resolve(datetime(2026, 3, 11, 23, 0), tz)
    found = cells(c, ritual, now, weeks=1)
    both = Answered(frozenset({"alex", "sam"}))
    answers = {cell.occurrence: both for cell in found if cell.wall.day < 11}
    open_now = cells(c, ritual, now, weeks=1, answers=answers)
    tonight = next(cell for cell in open_now if cell.wall.day == 11)
    assert tonight.state is State.UPCOMING
    assert current_streak(open_now) == 2  # Monday 9th and Tuesday 10th of this week
    closed = cells(c, ritual, now + timedelta(days=1), weeks=1, answers=answers)
    assert next(cell for cell in closed if cell.wall.day == 11).state is State.MISSED
    assert current_streak(closed) == 0


def test_cells_follow_the_viewer_skips_pauses_and_changes() -> None:
    c = couple({"kind": "gratitude", "schedule": "every day at 20:00", "partner_local": False})
    ritual = c.rituals[0]  # each partner
    tz = ZoneInfo("America/New_York")
    now = resolve(datetime(2026, 3, 12, 12, 0), tz)  # Thursday
    ids = {cell.wall.day: cell.occurrence for cell in cells(c, ritual, now, weeks=1)}
    answers = {
        ids[9]: Answered(frozenset({"alex"})),
        ids[10]: Answered(skipped_by=frozenset({"sam"})),
    }
    pause = {"sam": [Span(resolve(datetime(2026, 3, 10, 23, 0), tz), None)]}
    changes = {ids[11]: Change(ids[11], skipped=True)}
    alex = cells(c, ritual, now, weeks=1, answers=answers, pauses=pause, viewer="alex")
    sam = cells(c, ritual, now, weeks=1, answers=answers, pauses=pause, viewer="sam")
    both = cells(c, ritual, now, weeks=1, answers=answers, pauses=pause)
    assert [x.state for x in alex][:4] == [State.DONE, State.MISSED, State.UPCOMING, State.UPCOMING]
    assert [x.state for x in sam][:4] == [State.MISSED, State.SKIPPED, State.PAUSED, State.PAUSED]
    assert [x.state for x in both][:3] == [State.MISSED, State.SKIPPED, State.PAUSED]
    skipped = cells(c, ritual, now, weeks=1, changes=changes, viewer="alex")
    assert skipped[2].state is State.SKIPPED
    assert len(both) == 7  # one whole local week, upcoming cells included


@pytest.mark.parametrize(
    "timezone",
    ["Pacific/Kiritimati", "Pacific/Pago_Pago", "America/New_York", "Australia/Lord_Howe",
     "Europe/London", "Asia/Kathmandu"],
)  # fmt: skip
@pytest.mark.parametrize("schedule", ["every day at 02:30", "mon, wed, fri at 01:30"])
@pytest.mark.parametrize("now_wall", [datetime(2026, 3, 30, 12, 0), datetime(2026, 11, 2, 12, 0)])
def test_daylight_saving_and_far_zones_do_not_change_counts(
    timezone: str, schedule: str, now_wall: datetime
) -> None:
    """Spring-forward and fall-back weeks (Europe and the US change in them) and zones 14
    hours east or 11 west of UTC: the same local history gives the same cells and numbers."""
    results = set()
    for zone_name in (timezone, "UTC"):
        c = couple({"kind": "check_in", "schedule": schedule}, timezone=zone_name)
        ritual = c.rituals[0]
        now = resolve(now_wall, ZoneInfo(zone_name))
        every = cells(c, ritual, now, weeks=12)
        both = Answered(frozenset({"alex", "sam"}))
        answers = {x.occurrence: both for i, x in enumerate(every) if i % 3}
        found = cells(c, ritual, now, weeks=12, answers=answers)
        walls = tuple((x.wall, x.state) for x in found)
        result = strength(found, ritual.recurrence, now_wall.date())
        results.add((walls, result, current_streak(found)))
    assert len(results) == 1


# --- the score ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rec", "half_life_days"),
    [(DAILY, 13.0), (MWF, 19.858), (WEEKLY, 34.395)],
    ids=["daily", "3x-week", "weekly"],
)
def test_half_lives_are_loops(rec: Recurrence, half_life_days: float) -> None:
    m = frequency(rec).multiplier
    assert math.isclose(m**half_life_days, 0.5, rel_tol=1e-4)


def test_a_daily_ritual_kept_from_the_start_reaches_half_strength_in_13_days() -> None:
    found = series(DAILY, [State.DONE] * 13)
    assert math.isclose(score(found, frequency(DAILY), found[-1].wall.date()), 50.0)


@settings(max_examples=60)
@given(
    st.sampled_from([DAILY, MWF, WEEKLY]),
    st.lists(decided, min_size=1, max_size=60),
    st.data(),
)
def test_a_skipped_or_paused_occurrence_scores_as_if_it_was_never_scheduled(
    rec: Recurrence, marks: list[State], data: st.DataObject
) -> None:
    """The score with a skipped week equals the score with that week removed (for a weekly
    ritual; for others the skipped slot, from that occurrence to the next, is removed)."""
    at = data.draw(st.integers(0, len(marks) - 1))
    extra = data.draw(neutral)
    freq = frequency(rec)
    if rec is MWF:
        # Removing one of mon/wed/fri shifts the rest off the schedule: compare instead on
        # whole weeks, skipping all three of one week.
        at -= at % 3
        with_skip = [*marks[:at], extra, extra, extra, *marks[at:]]
    else:
        with_skip = [*marks[:at], extra, *marks[at:]]
    plain, skipped = series(rec, marks), series(rec, with_skip)
    assert math.isclose(
        score(skipped, freq, last_day(skipped, rec)),
        score(plain, freq, last_day(plain, rec)),
        abs_tol=1e-9,
    )


@given(st.sampled_from([DAILY, MWF, WEEKLY]), st.lists(states, min_size=1, max_size=60))
def test_the_score_stays_within_0_and_100(rec: Recurrence, marks: list[State]) -> None:
    found = series(rec, marks)
    assert 0.0 <= score(found, frequency(rec), last_day(found, rec)) <= 100.0
    assert 0 <= strength(found, rec, last_day(found, rec)).score <= 100


@given(st.sampled_from([DAILY, MWF, WEEKLY]), st.lists(states, min_size=1, max_size=60), st.data())
def test_the_score_is_monotone_in_completions(
    rec: Recurrence, marks: list[State], data: st.DataObject
) -> None:
    missed = [i for i, s in enumerate(marks) if s is State.MISSED]
    if not missed:
        return
    i = data.draw(st.sampled_from(missed))
    better = [*marks[:i], State.DONE, *marks[i + 1 :]]
    freq = frequency(rec)
    before, after = series(rec, marks), series(rec, better)
    today = last_day(before, rec)
    assert score(after, freq, today) >= score(before, freq, today) - 1e-9
    assert strength(after, rec, today).kept >= strength(before, rec, today).kept


def test_one_skipped_week_does_not_drop_a_weekly_ritual_but_a_miss_does() -> None:
    kept = series(WEEKLY, [State.DONE] * 52)
    today = last_day(kept, WEEKLY)
    freq = frequency(WEEKLY)
    full = score(kept, freq, today)
    skip = series(WEEKLY, [State.DONE] * 40 + [State.SKIPPED] + [State.DONE] * 11)
    miss = series(WEEKLY, [State.DONE] * 40 + [State.MISSED] + [State.DONE] * 11)
    assert score(skip, freq, last_day(skip, WEEKLY)) == pytest.approx(full, abs=0.1)
    assert score(miss, freq, last_day(miss, WEEKLY)) < full - 1


# --- the sentence ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rec", "marks", "sentence", "label"),
    [
        (WEEKLY, [State.DONE] * 40 + [State.MISSED] + [State.DONE] * 11,
         "strong: kept 11 of the last 12 weeks", Label.STRONG),
        (DAILY, [State.DONE] * 3 + [State.MISSED], "building: kept 3 of the last 4 evenings",
         Label.BUILDING),
        (WEEKLY, [State.MISSED] * 3 + [State.DONE], "slipping: kept 1 of the last 4 weeks",
         Label.SLIPPING),
        (MWF, [State.DONE, State.MISSED] * 30, "steady: kept 6 of the last 12 times",
         Label.STEADY),
        (WEEKLY, [State.SKIPPED], "new: nothing to count yet", Label.NEW),
        (WEEKLY, [State.DONE], "building: kept 1 of 1 so far", Label.BUILDING),
    ],
    ids=["strong", "building", "slipping", "steady", "new", "first"],
)  # fmt: skip
def test_each_score_comes_with_one_plain_sentence(
    rec: Recurrence, marks: list[State], sentence: str, label: Label
) -> None:
    found = series(rec, marks)
    result = strength(found, rec, last_day(found, rec))
    assert (result.sentence, result.label) == (sentence, label)
