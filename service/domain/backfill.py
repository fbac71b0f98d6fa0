"""DONE yesterday: logging the previous occurrence of a ritual, while it is recent.

"Yesterday" is read loosely, the way partners mean it: the ritual's latest occurrence that
started on a local day before the day the reply arrived (for a daily 21:00 check-in,
yesterday's, whether the reply comes the next morning or the next evening; for a weekly
one, the last one). It may be logged while it started at most ``BACKFILL_LIMIT`` before
the reply arrived: elapsed time, so a daylight-saving change neither gives nor takes an hour.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import TYPE_CHECKING

from service.domain.occurrences import ritual_occurrences

if TYPE_CHECKING:
    from datetime import datetime

    from service.domain.couples import Couple, Ritual
    from service.domain.occurrences import Occurrence

__all__ = ["BACKFILL_LIMIT", "backfillable", "previous_occurrence"]

BACKFILL_LIMIT = timedelta(hours=48)
# How far back the previous occurrence is looked for; beyond it there is nothing to name.
_LOOKBACK = timedelta(days=8)


def previous_occurrence(
    couple: Couple, ritual: Ritual, partner: str, received: datetime
) -> Occurrence | None:
    """The latest occurrence of ``ritual`` for ``partner`` (theirs, for partner-local
    rituals) that started on a local day before the one ``received`` (aware) falls on, in
    the occurrence's zone; None when there is none in the last 8 days."""
    found = None
    for occ in ritual_occurrences(couple, ritual, received - _LOOKBACK, received):
        if occ.partner not in (None, partner):
            continue
        if occ.start.date() < received.astimezone(occ.start.tzinfo).date():
            found = occ
    return found


def backfillable(occ: Occurrence, received: datetime) -> bool:
    """Whether ``occ`` started at most ``BACKFILL_LIMIT`` (elapsed) before ``received``."""
    # In UTC: Python subtracts two datetimes of the same zone by their wall times, which
    # across a daylight-saving change is an hour off.
    return received.astimezone(UTC) - occ.start.astimezone(UTC) <= BACKFILL_LIMIT
