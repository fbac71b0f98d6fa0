"""An independent reading of "this wall time in this zone": only UTC -> local conversions.

The product resolves wall times with PEP 495 ``fold=0``; this oracle never attaches a zone to
a naive datetime. It searches UTC instants whose local reading is the wall time, taking the
earliest (RFC 5545: the first of a repeated time) and, when there is none (a spring-forward
gap), the wall time read with the offset in force just before the gap.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["expected_instant", "transition_days"]


def expected_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    as_if_utc = wall.replace(tzinfo=UTC)
    offsets = {
        offset
        for hours in range(-40, 41, 2)
        if (offset := (as_if_utc + timedelta(hours=hours)).astimezone(tz).utcoffset()) is not None
    }
    readings = sorted(
        candidate for offset in offsets if _local(candidate := as_if_utc - offset, tz) == wall
    )
    if readings:
        return readings[0]
    # In a gap: find the UTC instant where local time jumps past `wall`, and use the offset
    # in force just before it.
    lo, hi = as_if_utc - timedelta(hours=30), as_if_utc + timedelta(hours=30)
    assert _local(lo, tz) < wall < _local(hi, tz)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if _local(mid, tz) < wall:
            lo = mid
        else:
            hi = mid
    before = lo.astimezone(tz).utcoffset()
    assert before is not None
    return as_if_utc - before


def transition_days(tz: ZoneInfo, first: int = 2018, last: int = 2031) -> list[date]:
    """Local dates on which ``tz`` changes its UTC offset, found by sampling every 6 hours."""
    days = []
    t = datetime(first, 1, 1, tzinfo=UTC)
    end = datetime(last, 1, 1, tzinfo=UTC)
    previous = t.astimezone(tz).utcoffset()
    while t < end:
        t += timedelta(hours=6)
        offset = t.astimezone(tz).utcoffset()
        if offset != previous:
            days.append(t.astimezone(tz).date())
            previous = offset
    return days


def _local(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)
