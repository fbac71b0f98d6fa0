"""When an occurrence counts as done, and how many in a row a partner or couple has done.

The rule is the ritual's ``completion`` (BRIEF.md): rituals for both are done when both
partners have answered; each-partner rituals count per partner; either-partner ones (date
night) with one answer; optional ones count when answered and are never asked for again.
A skip neither counts nor breaks a streak: skipping a date night for a sick day should not
cost the couple their run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import StrEnum

from service.domain.kinds import Completion
from service.domain.schedules import Freq, Recurrence

__all__ = ["Mark", "is_complete", "streak", "streak_phrase"]


class Mark(StrEnum):
    """What became of one past occurrence, from the point of view of a streak."""

    DONE = "done"
    SKIPPED = "skipped"
    OPEN = "open"  # not done: breaks the streak


def is_complete(
    completion: Completion, done_by: Collection[str], partners: Collection[str], partner: str
) -> bool:
    """Whether the occurrence is done, for ``partner`` where completion counts per partner."""
    if completion is Completion.BOTH:
        return all(p in done_by for p in partners)
    if completion is Completion.EACH:
        return partner in done_by
    return bool(done_by)


def streak(marks: Iterable[Mark]) -> int:
    """Done occurrences in a row, newest first, skips passed over; stops at the first open."""
    count = 0
    for mark in marks:
        if mark is Mark.OPEN:
            break
        if mark is Mark.DONE:
            count += 1
    return count


def streak_phrase(count: int, recurrence: Recurrence) -> str:
    """``5 evenings in a row.``; empty below 2, where a streak is not yet news."""
    if count < 2:
        return ""
    return f"{count} {_unit(recurrence)} in a row."


def _unit(rec: Recurrence) -> str:
    if rec.interval != 1 or rec.per_period != 1:
        return "times"
    if rec.freq is Freq.DAILY:
        hour = rec.time.hour
        return "evenings" if hour >= 17 else "mornings" if hour < 12 else "days"
    return {Freq.WEEKLY: "weeks", Freq.MONTHLY: "months", Freq.YEARLY: "years"}.get(
        rec.freq, "times"
    )
