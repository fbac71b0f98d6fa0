"""The weekly summary: what the two of you kept up over one week, the longest streak going,
and one gentle line about the ritual that slipped most, in a text a partner reads in five
seconds. Journal text never appears: a summary holds names and counts only.

Which week, and when. A week runs Monday 00:00 to the next Monday 00:00 in the couple's
zone and is named by its Monday (the event id ``<couple>/_week/<monday>/summary/<partner>``).
Its summary goes out on the couple file's ``summary.day`` at ``summary.at`` (couple's zone,
default Sunday 19:00), the first such day on or after the week's Sunday: the default sends
it on the week's own last evening; ``monday`` sends it the next morning, and so on up to
``saturday``, six days later. Each partner's copy is held past their own quiet hours.

What counts. An occurrence still open when the summary is written (Sunday's 21:00 check-in
at 19:00) is neither kept nor missed yet, so it is left out; skipped and paused ones are
not counted as due; optional rituals count only what was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from service.domain.segments import segments
from service.domain.wallclock import resolve, zone

if TYPE_CHECKING:
    from service.domain.couples import Couple, Partner

__all__ = [
    "SUMMARY_MAX",
    "RitualWeek",
    "summary_at",
    "summary_offset",
    "summary_text",
    "summary_week",
    "week_bounds",
    "week_start_of",
]

SUMMARY_MAX = 320  # characters; and never more than two SMS segments
_MAX_SEGMENTS = 2


@dataclass(frozen=True, slots=True)
class RitualWeek:
    """One ritual's week, for the couple: ``due`` counts kept and missed occurrences (not
    skipped, paused or still open); ``streak`` is the current run (in ``unit``s, plural)."""

    name: str
    due: int
    done: int
    optional: bool = False
    streak: int = 0
    unit: str = "times"

    @property
    def slipped(self) -> int:
        return 0 if self.optional else max(0, self.due - self.done)


def week_start_of(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def week_bounds(timezone: str, monday: date) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00, local to ``timezone``, as instants."""
    tz = zone(timezone)
    start = resolve(datetime.combine(monday, time()), tz)
    return start, resolve(datetime.combine(monday + timedelta(days=7), time()), tz)


def summary_offset(weekday: int) -> int:
    """Days from a week's Monday to its summary sent on ``weekday`` (0 Monday): 6 for Sunday
    (the week's own last day), 7 for the next Monday, … 12 for the next Saturday."""
    return 6 + (weekday - 6) % 7


def summary_week(couple: Couple, day: date) -> date | None:
    """The Monday of the week whose summary goes out on local ``day``; None when ``day`` is
    not the couple's summary day."""
    if day.weekday() != couple.summary.day:
        return None
    return day - timedelta(days=summary_offset(couple.summary.day))


def summary_at(couple: Couple, partner: Partner, monday: date) -> datetime:
    """When ``partner``'s summary of the week starting ``monday`` goes out: the couple's
    summary day and time (couple's zone), held past the partner's quiet hours (their zone)."""
    day = monday + timedelta(days=summary_offset(couple.summary.day))
    due = resolve(datetime.combine(day, couple.summary.at), zone(couple.timezone))
    if partner.quiet_hours is None:
        return due
    return partner.quiet_hours.release(due, couple.partner_zone(partner))


def summary_text(partner: str, other: str, rituals: Sequence[RitualWeek]) -> str:
    """``Your week with Sam, Alex: check-in 5/7, date night 1/1. Longest streak: …``; never
    over ``SUMMARY_MAX`` characters or two segments (rituals are dropped from the end of the
    list first, then the streak line)."""
    head = f"Your week with {other}, {partner}: "
    counted = [r for r in rituals if r.due or r.done]
    parts = [f"{r.name} {r.done}x" if r.optional else f"{r.name} {r.done}/{r.due}" for r in counted]
    best = max(rituals, key=lambda r: r.streak, default=None)
    streak_line = ""
    if best is not None and best.streak >= 2:
        streak_line = f" Longest streak: {best.name}, {best.streak} {best.unit} in a row."
    worst = _slipped_most(counted)
    if worst is not None:
        closing = f" {worst.name.capitalize()} slipped a little - maybe pick it up together?"
    elif counted:
        closing = " Every one of them - well done."
    else:
        closing = ""
    if not counted:
        quiet = f"Your week with {other}, {partner}: a quiet one. New week, fresh start."
        return _fit(quiet + streak_line)
    text = head + ", ".join(parts) + "." + streak_line + closing
    while not _fits(text) and parts:
        parts.pop()
        text = head + ", ".join(parts) + ", and more." + streak_line + closing
    if not _fits(text):
        text = head + "see how it went on your dashboard." + closing
    return _fit(text)


def _slipped_most(rituals: Sequence[RitualWeek]) -> RitualWeek | None:
    """The ritual with the smallest share kept (then the most missed); None if none slipped."""
    slipped = [r for r in rituals if r.slipped]
    if not slipped:
        return None
    return min(slipped, key=lambda r: (r.done / r.due, -r.slipped))


def _fits(text: str) -> bool:
    return len(text) <= SUMMARY_MAX and segments(text) <= _MAX_SEGMENTS


def _fit(text: str) -> str:
    # Only long (non-GSM) names could still overflow here: cut, never send three segments.
    while not _fits(text):
        text = text[: len(text) - 4].rstrip() + "..."
    return text
