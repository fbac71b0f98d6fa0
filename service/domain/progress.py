"""Progress: what became of each scheduled occurrence, streaks, and a habit-strength score.

Everything here follows the ritual's own schedule: one *cell* per scheduled occurrence, so a
"mon, wed, fri" ritual is judged on Monday, Wednesday and Friday only, never on a Tuesday.

A cell's state, for one partner (``viewer``) or for the couple (``viewer=None``):

    done       kept: by the ritual's completion rule (``completions.is_complete``); for the
               couple, both- and each-partner rituals need both partners, the others one
    skipped    skipped (a SKIP by the viewer, by either partner for the couple, or a
               couple-level skip change)
    paused     the viewer was paused at its start (for the couple: a partner it needs)
    upcoming   not started yet, or still open: unanswered but not yet closed (it closes when
               the series' next occurrence starts, and at most ``OPEN_FOR`` after its start:
               the reply window, after which a DONE no longer reaches it)
    missed     none of the above once it closed

Skips and pauses are *neutral*: they neither break nor extend a streak, and the score acts
as if their slot of time (from that occurrence to the next) had never been on the calendar.
An occurrence still open is neutral too, so a streak never breaks before its deadline.

The strength score follows Loop Habit Tracker (iSoron/uhabits, ``Score.kt`` and
``ScoreList.kt``): an exponential moving average over days, ``score = prev * m + c * (1 - m)``
with ``m = 0.5 ** (sqrt(f) / 13)`` for a ritual done ``f`` times a day (a half-life of
``13 / sqrt(f)`` days: 13 for daily, ~19.9 for three times a week, ~34.4 for weekly), and
``c`` the completions in a rolling window of one period (two when ``f < 1``) over what the
period asks for, capped at 1. Loop freezes the score on a skipped day but still counts the
skip as a gap inside the window, so one skipped week drops a weekly habit (uhabits#1183).
Hearth cuts neutral slots out of the timeline instead, so the score with a skipped week is
exactly the score with that week removed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Protocol, TypeAlias

from service.domain.changes import NO_CHANGES, Changes
from service.domain.completions import is_complete
from service.domain.couples import Couple, Ritual
from service.domain.kinds import Completion
from service.domain.occurrences import Occurrence, ritual_occurrences
from service.domain.recurrence import EPOCH, local_starts
from service.domain.schedules import Freq, Recurrence
from service.domain.wallclock import resolve

__all__ = [
    "NO_ANSWERS",
    "NO_PAUSES",
    "OPEN_FOR",
    "Answered",
    "Answers",
    "Cell",
    "Frequency",
    "Label",
    "Pauses",
    "Span",
    "State",
    "Strength",
    "cells",
    "current_streak",
    "frequency",
    "score",
    "state_of",
    "streak",
    "streak_phrase",
    "strength",
    "unit",
]

# An unanswered occurrence stays open at most this long: replies reach texts of the last
# 7 days only (``replying.py``), so after that a DONE can no longer land on it.
OPEN_FOR = timedelta(days=7)

# The sentence counts at most this many of the latest decided occurrences.
SENTENCE_SPAN = 12
# Thresholds of the sentence's label (score 0-100, share kept of the counted occurrences):
STRONG_FROM = 80  # score >= 80: "strong", whatever the last few did
STEADY_FROM = 50  # score >= 50 and at least half kept: "steady"
KEPT_ENOUGH = 0.5  # below half kept (and not strong): "slipping"; otherwise "building"


class State(StrEnum):
    """What became of one scheduled occurrence; a dashboard draws one cell of each."""

    DONE = "done"
    SKIPPED = "skipped"
    MISSED = "missed"
    PAUSED = "paused"
    UPCOMING = "upcoming"

    @property
    def neutral(self) -> bool:
        """Neither breaks nor extends a streak, and is cut out of the score's timeline."""
        return self in (State.SKIPPED, State.PAUSED, State.UPCOMING)


class Answers(Protocol):
    """Who answered one occurrence, and how (``storage.OccurrenceAnswers`` is one)."""

    @property
    def done_by(self) -> frozenset[str]: ...

    @property
    def skipped_by(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Answered:
    """A plain ``Answers``: partner keys that did, and that skipped, one occurrence."""

    done_by: frozenset[str] = frozenset()
    skipped_by: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Span:
    """A partner's pause, from ``start`` (aware) until ``end`` (aware, exclusive; None: open)."""

    start: datetime
    end: datetime | None = None

    def covers(self, instant: datetime) -> bool:
        return self.start <= instant and (self.end is None or instant < self.end)


# Partner key -> their pauses.
Pauses: TypeAlias = Mapping[str, Sequence[Span]]
NO_PAUSES: Pauses = MappingProxyType({})
NO_ANSWERS: Mapping[str, Answers] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Cell:
    """One scheduled occurrence and its state. ``wall`` is the nominal local start (naive,
    the occurrence's identity, so its date is the day it belongs to in the ritual's zone);
    ``start`` the aware instant (a moved occurrence's new start)."""

    occurrence: str
    wall: datetime
    start: datetime
    state: State


@dataclass(frozen=True, slots=True)
class Frequency:
    """How often a ritual comes, as Loop counts it: ``per_period`` times every
    ``period_days`` days (3 in 7 for "mon, wed, fri", 1 in 30 for monthly)."""

    per_period: float
    period_days: int

    @property
    def per_day(self) -> float:
        return self.per_period / self.period_days

    @property
    def multiplier(self) -> float:
        """Loop's daily decay ``m``: the score's half-life is ``13 / sqrt(per_day)`` days."""
        return float(0.5 ** (math.sqrt(self.per_day) / 13))

    @property
    def window_days(self) -> int:
        """The rolling window ``c`` is read over; doubled below once a day (Loop: "to smooth
        out irregular repetition schedules")."""
        return self.period_days * (2 if self.per_day < 1 else 1)

    @property
    def window_target(self) -> float:
        """Completions the window asks for."""
        return self.per_period * (2 if self.per_day < 1 else 1)


class Label(StrEnum):
    NEW = "new"
    BUILDING = "building"
    STEADY = "steady"
    STRONG = "strong"
    SLIPPING = "slipping"


@dataclass(frozen=True, slots=True)
class Strength:
    """A score 0-100 and the plain sentence that goes with it."""

    score: int
    label: Label
    kept: int  # of the ``counted`` latest decided (done or missed) occurrences
    counted: int
    unit: str  # "weeks", "evenings", "times", …

    @property
    def sentence(self) -> str:
        """``strong: kept 11 of the last 12 weeks``; see the thresholds at the module's top."""
        if self.counted == 0:
            return "new: nothing to count yet"
        if self.counted == 1:
            return f"{self.label}: kept {self.kept} of 1 so far"
        return f"{self.label}: kept {self.kept} of the last {self.counted} {self.unit}"


def state_of(
    occurrence: Occurrence,
    ritual: Ritual,
    partners: Sequence[str],
    answers: Answers | None,
    *,
    closes: datetime,
    now: datetime,
    viewer: str | None = None,
    skipped: bool = False,
    pauses: Pauses = NO_PAUSES,
) -> State:
    """The occurrence's state for ``viewer`` (a partner key; None for the couple) at ``now``.

    ``closes`` is when an unanswered occurrence turns missed; ``skipped`` a couple-level skip
    (a change). ``partners`` are the couple's partner keys."""
    needed = (occurrence.partner,) if occurrence.partner else tuple(partners)
    done_by = answers.done_by if answers else frozenset()
    skipped_by = answers.skipped_by if answers else frozenset()
    rule = ritual.completion
    both_needed = rule in (Completion.BOTH, Completion.EACH)
    if viewer is not None:
        kept = is_complete(rule, done_by, needed, viewer)
    elif both_needed:
        kept = all(p in done_by for p in needed)
    else:
        kept = bool(done_by)
    if kept:
        return State.DONE
    if skipped or (viewer in skipped_by if viewer is not None else bool(skipped_by)):
        return State.SKIPPED
    paused = [any(s.covers(occurrence.start) for s in pauses.get(p, ())) for p in needed]
    if viewer is not None:
        if any(s.covers(occurrence.start) for s in pauses.get(viewer, ())):
            return State.PAUSED
    elif (any(paused) if both_needed else all(paused)) and paused:
        return State.PAUSED
    return State.UPCOMING if now < closes else State.MISSED


def cells(
    couple: Couple,
    ritual: Ritual,
    now: datetime,
    *,
    weeks: int = 12,
    viewer: str | None = None,
    answers: Mapping[str, Answers] = NO_ANSWERS,
    changes: Changes = NO_CHANGES,
    pauses: Pauses = NO_PAUSES,
    since: datetime | None = None,
) -> list[Cell]:
    """One cell per scheduled occurrence of ``ritual`` (for ``viewer``, or the couple when
    None), oldest first, over whole local weeks: from Monday 00:00 ``weeks - 1`` weeks before
    ``now``'s week to the end of ``now``'s week, in the ritual's zone (the couple's for a
    partner-local ritual). Occurrences after ``now`` are upcoming; none before ``since``
    (when the couple started, so weeks before it are not drawn as missed)."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    tz = couple.zone_of(ritual)
    monday = now.astimezone(tz).date()
    monday -= timedelta(days=monday.weekday() + 7 * (weeks - 1))
    start = resolve(datetime.combine(monday, time()), tz)
    end = resolve(datetime.combine(monday + timedelta(days=7 * weeks), time()), tz)
    if since is not None:
        start = max(start, since)
    keys = [p.key for p in couple.partners]
    # Past the window's end by the open period, to know when its last occurrence closes.
    found = sorted(
        (
            o
            for o in ritual_occurrences(couple, ritual, start, end + OPEN_FOR)
            if viewer is None or o.partner in (None, viewer)
        ),
        key=lambda o: (o.start, o.id),
    )
    out = []
    for i, occ in enumerate(found):
        if occ.start >= end:
            continue
        following = next((o for o in found[i + 1 :] if o.partner == occ.partner), None)
        closes = occ.start + OPEN_FOR
        if following is not None:
            closes = min(closes, following.start)
        change = changes.get(occ.id)
        shown = occ
        if change is not None and change.moved_to is not None and not change.skipped:
            shown = replace(occ, start=change.moved_to)
            closes = max(closes, change.moved_to + (closes - occ.start))
        state = state_of(
            shown,
            ritual,
            keys,
            answers.get(occ.id),
            closes=closes,
            now=now,
            viewer=viewer,
            skipped=change is not None and change.skipped,
            pauses=pauses,
        )
        out.append(Cell(occ.id, occ.wall, shown.start, state))
    return out


def streak(states: Iterable[State]) -> int:
    """Kept occurrences in a row, newest first: neutral ones (skipped, paused, still open or
    upcoming) are passed over; the first missed one ends it."""
    count = 0
    for state in states:
        if state is State.MISSED:
            break
        if state is State.DONE:
            count += 1
    return count


def current_streak(found: Sequence[Cell]) -> int:
    """The streak as it stands at the end of ``found`` (cells oldest first)."""
    return streak(c.state for c in reversed(found))


def streak_phrase(count: int, recurrence: Recurrence) -> str:
    """``5 evenings in a row.``; empty below 2, where a streak is not yet news."""
    if count < 2:
        return ""
    return f"{count} {unit(recurrence)} in a row."


def unit(rec: Recurrence) -> str:
    """The ritual's own unit, plural: evenings, mornings, days, weeks, months, years, times."""
    if rec.interval != 1 or rec.per_period != 1:
        return "times"
    if rec.freq is Freq.DAILY:
        hour = rec.time.hour
        return "evenings" if hour >= 17 else "mornings" if hour < 12 else "days"
    return {Freq.WEEKLY: "weeks", Freq.MONTHLY: "months", Freq.YEARLY: "years"}.get(
        rec.freq, "times"
    )


def frequency(rec: Recurrence, anchor: date = EPOCH) -> Frequency:
    """The rule's frequency as Loop takes it: a period of ``interval`` days, weeks, months
    (30 days, as Loop) or years, and how many occurrences one holds on average (counted
    over 52 periods from ``anchor``, ignoring COUNT and UNTIL)."""
    return _frequency(replace(rec, text="", count=None, until=None), anchor)


def score(found: Sequence[Cell], freq: Frequency, today: date) -> float:
    """The strength 0-100 (a float) of the cells ``found`` (oldest first) as of the local
    date ``today`` (in the ritual's zone); see the module's docstring for the rule.

    The timeline is the local days from the first cell to ``today``; each day belongs to
    the latest occurrence on or before it (its slot). Days whose occurrences are all
    neutral, or that lie in a neutral occurrence's slot, are cut out; each remaining day
    moves the average once, with ``c`` read over the last ``window_days`` remaining days.
    """
    decided = [c for c in found if c.wall.date() <= today]
    if not decided:
        return 0.0
    starts: dict[date, list[State]] = {}
    for cell in decided:
        starts.setdefault(cell.wall.date(), []).append(cell.state)
    done_on: list[int] = []  # one entry per kept day: the completions on it
    day = decided[0].wall.date()
    owner_neutral = True
    while day <= today:
        states = starts.get(day)
        if states is not None:
            owner_neutral = states[-1].neutral
            if all(s.neutral for s in states):
                day += timedelta(days=1)
                continue
            done_on.append(sum(1 for s in states if s is State.DONE))
        elif not owner_neutral:
            done_on.append(0)
        day += timedelta(days=1)
    m = freq.multiplier
    width, target = freq.window_days, freq.window_target
    value = 0.0
    in_window = 0
    for i, done in enumerate(done_on):
        in_window += done
        if i >= width:
            in_window -= done_on[i - width]
        c = min(1.0, in_window / target)
        value = value * m + c * (1 - m)
    return 100 * value


def strength(found: Sequence[Cell], rec: Recurrence, today: date, anchor: date = EPOCH) -> Strength:
    """The score of ``found`` (oldest first) as of local date ``today``, with its sentence
    over the latest ``SENTENCE_SPAN`` decided (done or missed) occurrences."""
    value = round(score(found, frequency(rec, anchor), today))
    recent = [c for c in found if c.state in (State.DONE, State.MISSED)][-SENTENCE_SPAN:]
    kept = sum(1 for c in recent if c.state is State.DONE)
    counted = len(recent)
    if counted == 0:
        label = Label.NEW
    elif value >= STRONG_FROM:
        label = Label.STRONG
    elif kept < KEPT_ENOUGH * counted:
        label = Label.SLIPPING
    elif value >= STEADY_FROM:
        label = Label.STEADY
    else:
        label = Label.BUILDING
    return Strength(value, label, kept, counted, unit(rec))


_PERIOD_DAYS = {Freq.DAILY: 1, Freq.WEEKLY: 7, Freq.MONTHLY: 30, Freq.YEARLY: 365}
_SAMPLE_PERIODS = 52


@lru_cache(maxsize=1024)
def _frequency(rec: Recurrence, anchor: date) -> Frequency:
    period_days = _PERIOD_DAYS[rec.freq] * rec.interval
    per_period = rec.per_period
    if per_period is None:
        after = datetime.combine(anchor, time())
        before = after + timedelta(days=period_days * _SAMPLE_PERIODS)
        found = sum(1 for _ in local_starts(rec, anchor, after, before))
        return Frequency(max(found, 1) / _SAMPLE_PERIODS, period_days)
    return Frequency(float(per_period), period_days)
