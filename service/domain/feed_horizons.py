"""How far ahead each calendar ritual shows in a feed, so every calendar client keeps it whole.

Google Calendar takes about 1 MB from a subscribed URL and silently drops events past about
1,100. A feed therefore holds at most ``FeedLimits.events`` events and ``FeedLimits.size``
bytes, and the rule that keeps it there is:

- every ritual shows all its occurrences from ``past`` ago up to its own *horizon*, with no
  gap before it (a shown occurrence is one that starts before the horizon);
- the horizon is ``future`` ahead (400 days) unless the limits need less; then the most
  frequent rituals are cut first, by capping every ritual at the same number of future
  occurrences, the largest cap that fits (water-filling): a ritual with fewer occurrences
  than the cap keeps the whole year, so its daylight-saving changes stay in view;
- a cut ritual still shows at least ``floor`` ahead (8 weeks), even past the cap.

Sizes are what the caller measured for each event (the feeds adapter renders them), and
``overhead`` is everything else in the feed; the rule itself knows nothing of RFC 5545.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate
from typing import TYPE_CHECKING

from service.domain.schedules import Freq

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from service.domain.schedules import Recurrence

__all__ = [
    "FEED_LIMITS",
    "Candidate",
    "FeedLimits",
    "Horizons",
    "feed_horizons",
    "most_occurrences",
]


@dataclass(frozen=True, slots=True)
class FeedLimits:
    events: int = 1000  # Google drops events past ~1,100
    size: int = 1_000_000  # bytes; Google takes ~1 MB
    past: timedelta = timedelta(days=30)
    # At least 13 months ahead, so a whole year of daylight-saving changes is in view.
    future: timedelta = timedelta(days=400)
    floor: timedelta = timedelta(weeks=8)

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """Where a feed's candidate occurrences start: ``[now - past, now + future)``."""
        return now - self.past, now + self.future


FEED_LIMITS = FeedLimits()


@dataclass(frozen=True, slots=True)
class Candidate:
    """One occurrence a feed could show: its ritual, its (shown) start, its bytes."""

    ritual: str
    start: datetime
    size: int


@dataclass(frozen=True, slots=True)
class Horizons:
    """Each ritual's horizon (the first instant it no longer shows), and what fits."""

    by_ritual: Mapping[str, datetime]
    events: int
    size: int  # bytes, with the overhead
    kept_floor: bool  # False only when even 8 weeks ahead broke a limit and gave way

    def shows(self, candidate: Candidate) -> bool:
        return candidate.start < self.by_ritual[candidate.ritual]


def feed_horizons(
    candidates: Iterable[Candidate],
    now: datetime,
    overhead: int = 0,
    limits: FeedLimits = FEED_LIMITS,
) -> Horizons:
    """The horizon of every ritual among ``candidates`` (those starting in
    ``limits.window(now)``), by the rule in the module docstring.

    When even the floor does not fit (a couple file the loader should have refused), the
    floor gives way rather than the limits: a feed a client truncates silently is worse
    than a shorter one.
    """
    lo, hi = limits.window(now)
    by_ritual: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        if lo <= c.start < hi:
            by_ritual[c.ritual].append(c)
    series = [_Series.of(ritual, found, now) for ritual, found in sorted(by_ritual.items())]
    whole = max((s.ahead for s in series), default=0)

    def totals(cap: int, floor: datetime) -> tuple[int, int]:
        counts = [s.shown(s.horizon(cap, floor, hi)) for s in series]
        events = sum(counts)
        size = overhead + sum(s.size_of(n) for s, n in zip(series, counts, strict=True))
        return events, size

    def fits(cap: int, floor: datetime) -> bool:
        events, size = totals(cap, floor)
        return events <= limits.events and size <= limits.size

    floor = now + limits.floor
    kept_floor = fits(0, floor)
    if not kept_floor:
        floor = now  # degenerate: see the docstring
    cap = whole
    if not fits(whole, floor):
        # The largest cap that fits: fits() only turns false as the cap grows.
        good, bad = 0, whole
        while bad - good > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if fits(mid, floor) else (good, mid)
        cap = good
    events, size = totals(cap, floor)
    return Horizons({s.ritual: s.horizon(cap, floor, hi) for s in series}, events, size, kept_floor)


def most_occurrences(rule: Recurrence, span: timedelta) -> int:
    """An upper bound of the occurrences ``rule`` has in any ``span`` of time, from its shape
    alone (no clock, no expansion), for checking a couple file when it loads.

    A rule fires at most once per local date, and a span touches at most ``days + 2`` dates
    (a daylight-saving change can stretch its local end by an hour)."""
    dates = span.days + 2
    if rule.freq is Freq.DAILY:
        bound = -(-dates // rule.interval)
        if rule.by_day:
            bound = min(bound, len(rule.by_day) * (dates // 7 + 2))
    elif rule.freq is Freq.WEEKLY:
        bound = max(1, len(rule.by_day)) * (dates // (7 * rule.interval) + 2)
    elif rule.freq is Freq.MONTHLY:
        if rule.by_set_pos:
            per_month = len(rule.by_set_pos)
        elif rule.by_month_day:
            per_month = len(rule.by_month_day)
        elif rule.by_day:
            per_month = sum(5 if nth == 0 else 1 for _, nth in rule.by_day)
        else:
            per_month = 1
        bound = per_month * (dates // (28 * rule.interval) + 2)
    else:
        bound = dates  # yearly rules with BYWEEKNO, BYYEARDAY, …: one a date is the bound
    if rule.count is not None:
        bound = min(bound, rule.count)
    return min(bound, dates)


@dataclass(frozen=True, slots=True)
class _Series:
    ritual: str
    starts: list[datetime]  # sorted
    sizes: list[int]  # running totals: sizes[n] = bytes of the first n
    first_ahead: int  # index of the first occurrence starting at or after now

    @classmethod
    def of(cls, ritual: str, found: list[Candidate], now: datetime) -> _Series:
        found = sorted(found, key=lambda c: c.start)
        starts = [c.start for c in found]
        sizes = [0, *accumulate(c.size for c in found)]
        return cls(ritual, starts, sizes, bisect_left(starts, now))

    @property
    def ahead(self) -> int:
        return len(self.starts) - self.first_ahead

    def horizon(self, cap: int, floor: datetime, end: datetime) -> datetime:
        """With at most ``cap`` future occurrences (but never less than to ``floor``)."""
        if self.ahead <= cap:
            return end
        return max(floor, self.starts[self.first_ahead + cap])

    def shown(self, horizon: datetime) -> int:
        return bisect_left(self.starts, horizon)

    def size_of(self, shown: int) -> int:
        return self.sizes[shown]
