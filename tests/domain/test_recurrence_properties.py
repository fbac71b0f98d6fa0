"""Recurrence across hard zones, checked against calendar arithmetic and the UTC-search oracle."""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.occurrences import occurrences
from service.domain.recurrence import EPOCH
from tests.domain.builders import couple as make_couple
from tests.domain.oracle import expected_instant, transition_days

ZONES = [
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/Sao_Paulo",
    "America/St_Johns",
    "Europe/Dublin",
    "Africa/Casablanca",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "America/New_York",
    "Europe/London",
]

DayRule = Callable[[date], bool]


def _nth_weekday(day: date, weekday: int, nth: int) -> bool:
    if day.weekday() != weekday:
        return False
    if nth == -1:
        return day.day + 7 > calendar.monthrange(day.year, day.month)[1]
    return (day.day - 1) // 7 + 1 == nth


def _every_other(weekday: int) -> DayRule:
    first = EPOCH + timedelta(days=(weekday - EPOCH.weekday()) % 7)
    return lambda d: d.weekday() == weekday and ((d - first).days // 7) % 2 == 0


# Each friendly form with an independent statement of which local dates it names.
FORMS: list[tuple[str, DayRule]] = [
    ("every day", lambda d: True),
    ("weekdays", lambda d: d.weekday() < 5),
    ("weekends", lambda d: d.weekday() >= 5),
    ("mon, wed, fri", lambda d: d.weekday() in (0, 2, 4)),
    ("every other friday", _every_other(4)),
    ("every 2 weeks on sun", _every_other(6)),
    ("first saturday of the month", lambda d: _nth_weekday(d, 5, 1)),
    ("last sunday of the month", lambda d: _nth_weekday(d, 6, -1)),
    ("monthly on the 15th", lambda d: d.day == 15),
    ("3 times a week", lambda d: d.weekday() in (0, 2, 4)),
]


@cache
def _transitions(name: str) -> list[date]:
    return transition_days(ZoneInfo(name))


@st.composite
def windows(draw: st.DrawFn, name: str) -> tuple[date, int]:
    """Windows that usually straddle one of the zone's offset changes."""
    days = _transitions(name)
    if days and draw(st.booleans()):
        around = draw(st.sampled_from(days))
        start = around - timedelta(days=draw(st.integers(0, 20)))
    else:
        start = draw(st.dates(date(2019, 1, 1), date(2030, 12, 1)))
    return start, draw(st.integers(1, 45))


# Times that fall in gaps and folds in these zones are the interesting ones.
TIMES = st.one_of(
    st.builds(time, st.integers(0, 3), st.sampled_from([0, 15, 30, 45, 59])),
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 30])),
)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_expansion_matches_calendar_and_utc_search_in_hard_zones(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(ZONES), label="zone")
    form, names_day = data.draw(st.sampled_from(FORMS), label="form")
    at = data.draw(TIMES, label="time")
    start_day, length = data.draw(windows(name), label="window")
    tz = ZoneInfo(name)
    couple = make_couple({"kind": "custom", "schedule": f"{form} at {at:%H:%M}"}, timezone=name)
    # Wide UTC bounds, then compare only whole local days well inside them.
    lo = datetime.combine(start_day, time(), UTC) - timedelta(days=2)
    hi = datetime.combine(start_day + timedelta(days=length), time(), UTC) + timedelta(days=2)
    got = {o.wall.date(): o for o in occurrences(couple, lo, hi)}
    days = [start_day + timedelta(days=i) for i in range(length)]
    for day in days:
        wall = datetime.combine(day, at)
        if not names_day(day):
            assert day not in got, f"{form} should not fire on {day}"
            continue
        assert day in got, f"{form} at {at} skipped {day} in {name}"
        occ = got[day]
        assert occ.wall == wall
        # Compare in UTC: PEP 495 makes == between zones False for any time in a fold.
        assert occ.start.astimezone(UTC) == expected_instant(wall, tz), (name, wall)
        assert occ.start.utcoffset() == occ.start.astimezone(tz).utcoffset()
    walls = [o.wall for o in occurrences(couple, lo, hi)]
    assert len(walls) == len(set(walls)), "a local wall time fired twice"


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(ZONES),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 30]),
    start=st.dates(date(2020, 1, 1), date(2030, 1, 1)),
)
def test_daily_ritual_fires_exactly_once_every_local_day(
    name: str, hour: int, minute: int, start: date
) -> None:
    couple = make_couple(
        {"kind": "check_in", "schedule": f"every day at {hour:02d}:{minute:02d}"}, timezone=name
    )
    lo = datetime.combine(start, time(), UTC)
    found = occurrences(couple, lo, lo + timedelta(days=60))
    local_days = [o.wall.date() for o in found]
    assert len(local_days) == len(set(local_days))
    inner = local_days[1:-1]
    assert all((b - a).days == 1 for a, b in itertools.pairwise(inner))
    starts = [o.start for o in found]
    assert starts == sorted(starts)
