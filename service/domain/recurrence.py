"""Expanding a ``Recurrence`` into local wall times, and those into instants.

Expansion happens over *local dates* with dateutil's RFC 5545 engine (never by walking UTC,
which fires twice at fall-back and skips at spring-forward); each local wall time becomes an
instant by ``wallclock.resolve``, the single RFC 5545 disambiguation rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal

from dateutil import rrule as du

from service.domain.schedules import Freq, Recurrence

__all__ = ["EPOCH", "local_starts", "ordinal"]

# Series without a `start:` date count from here, so "every other friday" has the same
# parity on every machine and after every restart. A Monday, so weekly periods align.
EPOCH = date(2000, 1, 3)

_FREQ: dict[Freq, Literal[0, 1, 2, 3, 4, 5, 6]] = {
    Freq.DAILY: du.DAILY,
    Freq.WEEKLY: du.WEEKLY,
    Freq.MONTHLY: du.MONTHLY,
    Freq.YEARLY: du.YEARLY,
}
_DU_DAYS = (du.MO, du.TU, du.WE, du.TH, du.FR, du.SA, du.SU)


def local_starts(
    rec: Recurrence, anchor: date, after: datetime, before: datetime, last: date | None = None
) -> Iterator[datetime]:
    """Naive local wall times of ``rec`` with ``after <= t < before``, in order.

    ``anchor`` is the series' first possible date (its ``start:``), ``last`` its last
    (``end:``, inclusive). Both bounds are naive local times in the series' zone.
    """
    first = datetime.combine(anchor, rec.time)
    start = max(after, first)
    if start >= before:
        return
    rule = _rule(rec, anchor, _fast_forward(rec, anchor, start.date()))
    stop = before
    if last is not None:
        stop = min(stop, datetime.combine(last + timedelta(days=1), datetime.min.time()))
    for wall in rule.xafter(start, inc=True):
        if wall >= stop:
            return
        yield wall


def ordinal(rec: Recurrence, anchor: date, wall: datetime) -> int:
    """0 for the series' first occurrence, 1 for the next, …; ``wall`` must be one of them.

    For rules with a fixed number of occurrences per period this is arithmetic on periods,
    so it costs the same in year one and year twenty; other rules count since ``anchor``.
    """
    first = next(
        local_starts(rec, anchor, datetime.combine(anchor, rec.time), wall + timedelta(seconds=1)),
        None,
    )
    if first is None:
        raise ValueError(f"{wall} is not an occurrence of {rec.text!r}")
    k = rec.per_period
    if k is not None and rec.count is None:
        periods = (_period(rec, wall.date()) - _period(rec, first.date())) // rec.interval
        return (
            k * periods + _index_in_period(rec, wall.date()) - _index_in_period(rec, first.date())
        )
    return sum(1 for _ in local_starts(rec, anchor, first, wall))


def _index_in_period(rec: Recurrence, day: date) -> int:
    """How many of a weekly rule's days come before ``day`` in its week (0 for other rules)."""
    if rec.freq is not Freq.WEEKLY or len(rec.by_day) < 2:
        return 0
    offset = (day.weekday() - rec.week_start) % 7
    return sum(1 for d, _ in set(rec.by_day) if (d - rec.week_start) % 7 < offset)


def _period(rec: Recurrence, day: date) -> int:
    if rec.freq is Freq.DAILY:
        return day.toordinal()
    if rec.freq is Freq.WEEKLY:
        return (day.toordinal() - (day.weekday() - rec.week_start) % 7) // 7
    if rec.freq is Freq.MONTHLY:
        return day.year * 12 + day.month - 1
    return day.year


def _fast_forward(rec: Recurrence, anchor: date, target: date) -> date:
    """A later series start, on a period boundary, that yields the same dates from ``target`` on.

    dateutil iterates from DTSTART; moving DTSTART forward by whole multiples of INTERVAL
    periods keeps the rule's alignment and makes expansion cost independent of the anchor.
    COUNT needs every earlier occurrence, so it is never moved.
    """
    if rec.count is not None or target <= anchor:
        return anchor
    n = rec.interval
    if rec.freq is Freq.DAILY:
        steps = (target - anchor).days // n
        return anchor + timedelta(days=steps * n)
    if rec.freq is Freq.WEEKLY:
        week0 = anchor - timedelta(days=(anchor.weekday() - rec.week_start) % 7)
        steps = ((target - week0).days // 7) // n
        moved = week0 + timedelta(weeks=steps * n)
        return moved if moved > anchor else anchor
    if rec.freq is Freq.MONTHLY:
        months = (target.year - anchor.year) * 12 + target.month - anchor.month
        steps = months // n
        total = anchor.year * 12 + anchor.month - 1 + steps * n
        moved = date(total // 12, total % 12 + 1, 1)
        return moved if moved > anchor else anchor
    steps = (target.year - anchor.year) // n
    moved = date(anchor.year + steps * n, 1, 1)
    return moved if moved > anchor else anchor


def _rule(rec: Recurrence, anchor: date, dtstart: date) -> du.rrule:
    # The same rule spelt two ways ("daily at 9:00", "every day at 09:00") shares one entry.
    return _rule_cached(_normal(rec, anchor), dtstart)


@lru_cache(maxsize=16384)
def _normal(rec: Recurrence, anchor: date) -> Recurrence:
    return replace(_implied(rec, anchor), text="")


def _implied(rec: Recurrence, anchor: date) -> Recurrence:
    """Spell out the day parts RFC 5545 takes from DTSTART when a rule leaves them out."""
    days = rec.by_day or rec.by_month_day or rec.by_year_day or rec.by_week_no
    if rec.freq is Freq.WEEKLY and not days:
        return replace(rec, by_day=((anchor.weekday(), 0),))
    if rec.freq is Freq.MONTHLY and not days:
        return replace(rec, by_month_day=(anchor.day,))
    if rec.freq is Freq.YEARLY and not days:
        return replace(rec, by_month=rec.by_month or (anchor.month,), by_month_day=(anchor.day,))
    return rec


# A dateutil rrule weighs a few KiB: the cache holds the rules many couples share, not all.
@lru_cache(maxsize=2048)
def _rule_cached(rec: Recurrence, dtstart: date) -> du.rrule:
    by_weekday = [_DU_DAYS[d](n) if n else _DU_DAYS[d] for d, n in rec.by_day] or None
    # ``rec`` has its implied day parts spelled out (``_implied``), so a DTSTART moved by
    # ``_fast_forward`` cannot move the series.
    return du.rrule(
        _FREQ[rec.freq],
        dtstart=datetime.combine(dtstart, rec.time),
        interval=rec.interval,
        wkst=rec.week_start,
        count=rec.count,
        until=datetime.combine(rec.until, datetime.max.time()) if rec.until else None,
        bysetpos=list(rec.by_set_pos) or None,
        bymonth=list(rec.by_month) or None,
        bymonthday=list(rec.by_month_day) or None,
        byyearday=list(rec.by_year_day) or None,
        byweekno=list(rec.by_week_no) or None,
        byweekday=by_weekday,
        byhour=rec.time.hour,
        byminute=rec.time.minute,
        bysecond=0,
        cache=False,
    )
