"""The feed horizon rule: within the limits, every ritual at least 8 weeks (the whole year
when it fits), the most frequent cut first and only as far as needed, no gaps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.errors import CoupleInvalid
from service.domain.feed_horizons import (
    FEED_LIMITS,
    Candidate,
    FeedLimits,
    feed_horizons,
    most_occurrences,
)
from service.domain.occurrences import occurrences
from service.domain.schedules import EXAMPLES
from tests.domain.builders import couple, utc

NOW = utc(2026, 12, 1, 9, 30)
LO, HI = FEED_LIMITS.window(NOW)
FLOOR = NOW + FEED_LIMITS.floor

# A ritual: every ``step`` hours (one a day is the most a schedule gives; moves add a few),
# starting ``offset`` hours into the window, each event ``size`` bytes.
ritual = st.tuples(
    st.sampled_from([24, 24, 48, 72, 168, 336, 720, 8760]) | st.integers(20, 2000),
    st.integers(0, 24 * 60),
    st.integers(300, 3000),
)


def series(name: str, step_h: int, offset_h: int, size: int) -> list[Candidate]:
    out, at = [], LO + timedelta(hours=offset_h)
    while at < HI:
        out.append(Candidate(name, at, size))
        at += timedelta(hours=step_h)
    return out


@settings(max_examples=150, deadline=None)
@given(rituals=st.lists(ritual, min_size=1, max_size=14), overhead=st.integers(0, 50_000))
def test_horizons_fit_the_limits_and_cut_the_most_frequent_first(
    rituals: list[tuple[int, int, int]], overhead: int
) -> None:
    found = [c for i, r in enumerate(rituals) for c in series(f"r{i}", *r)]
    got = feed_horizons(found, NOW, overhead)
    shown = [c for c in found if got.shows(c)]

    # What it reports is what it shows.
    assert got.events == len(shown)
    assert got.size == overhead + sum(c.size for c in shown)
    floor_events = [c for c in found if c.start < FLOOR]
    floor_size = overhead + sum(c.size for c in floor_events)
    floor_fits = len(floor_events) <= FEED_LIMITS.events and floor_size <= FEED_LIMITS.size
    assert got.kept_floor == floor_fits
    past = [c for c in found if c.start < NOW]
    if len(past) <= FEED_LIMITS.events and overhead + sum(c.size for c in past) <= FEED_LIMITS.size:
        assert got.events <= FEED_LIMITS.events
        assert got.size <= FEED_LIMITS.size
    everything = (
        len(found) <= FEED_LIMITS.events
        and overhead + sum(c.size for c in found) <= FEED_LIMITS.size
    )
    for name, horizon in got.by_ritual.items():
        assert horizon <= HI
        if floor_fits:
            assert horizon >= FLOOR, f"{name} cut below 8 weeks"
        if everything:
            assert horizon == HI, f"{name} cut though everything fits"
        # No gap: every occurrence before the horizon is shown, none after.
        mine = [c for c in found if c.ritual == name]
        assert [c for c in mine if c.start < horizon] == [c for c in mine if got.shows(c)]
    cut = {n for n, h in got.by_ritual.items() if h < HI}
    ahead = {n: sum(1 for c in found if c.ritual == n and c.start >= NOW) for n in got.by_ritual}
    for a in cut:
        # A ritual with at least as many occurrences ahead as a cut one is cut too.
        for b in got.by_ritual:
            if ahead[b] >= ahead[a]:
                assert b in cut, f"{a} cut before the more frequent {b}"
    if cut and floor_fits:
        # Only as far as needed: the cap is what the least-shown cut ritual shows ahead, and
        # one more occurrence ahead for every cut ritual would break a limit.
        shown_ahead = {n: sum(1 for c in shown if c.ritual == n and c.start >= NOW) for n in cut}
        cap = min(shown_ahead.values())
        extra = [
            c
            for n in cut
            for c in [o for o in found if o.ritual == n and o.start >= NOW][: cap + 1]
            if not got.shows(c)
        ]
        events, size = len(shown) + len(extra), got.size + sum(c.size for c in extra)
        assert events > FEED_LIMITS.events or size > FEED_LIMITS.size


def test_four_daily_rituals_and_two_weekly_ones_share_the_thousand_events() -> None:
    found = [
        *(c for i in range(4) for c in series(f"daily{i}", 24, 3 + i, 700)),
        *series("weekly", 168, 20, 700),
        *series("fortnightly", 336, 40, 700),
    ]
    got = feed_horizons(found, NOW)
    assert got.kept_floor
    assert got.by_ritual["weekly"] == HI
    assert got.by_ritual["fortnightly"] == HI
    daily = {got.by_ritual[f"daily{i}"] for i in range(4)}
    assert all(FLOOR <= h < HI for h in daily)
    # Each daily ritual keeps the same number of days, about (1000 - past - weekly) / 4 ahead.
    days = {(h - NOW).days for h in daily}
    assert max(days) - min(days) <= 1
    assert 180 < min(days) < 220
    assert 990 <= got.events <= 1000


def test_sizes_bind_when_events_are_large() -> None:
    found = [c for i in range(3) for c in series(f"long{i}", 24, i, 2500)]
    got = feed_horizons(found, NOW, overhead=10_000)
    assert got.kept_floor
    assert got.events < FEED_LIMITS.events  # the megabyte, not the count, was the limit
    assert FEED_LIMITS.size - 3 * 2500 < got.size <= FEED_LIMITS.size


def test_when_even_eight_weeks_cannot_fit_the_limits_win() -> None:
    # Twelve daily rituals: 12 x 86 events from 30 days back to 8 weeks ahead is over 1,000.
    found = [c for i in range(12) for c in series(f"d{i}", 24, i, 500)]
    got = feed_horizons(found, NOW)
    assert not got.kept_floor
    assert got.events <= FEED_LIMITS.events
    assert all(NOW <= h < FLOOR for h in got.by_ritual.values())


def test_custom_limits_are_honoured() -> None:
    limits = FeedLimits(events=100, floor=timedelta(days=14))
    found = series("daily", 24, 0, 100)
    got = feed_horizons(found, NOW, limits=limits)
    assert got.events == 100
    assert got.by_ritual["daily"] - NOW >= timedelta(days=14)


def test_an_empty_feed_has_no_horizons() -> None:
    got = feed_horizons([], NOW, overhead=500)
    assert got == type(got)({}, 0, 500, True)


# --- the check when a couple file loads ---------------------------------------------------

RULES = (
    *EXAMPLES,
    "FREQ=DAILY;INTERVAL=2",
    "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU",
    "FREQ=MONTHLY;BYDAY=SA,SU",
    "FREQ=MONTHLY;BYMONTHDAY=1,15,28",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;BYWEEKNO=10,11;BYDAY=MO,WE",
)


@settings(max_examples=60, deadline=None)
@given(
    rule=st.sampled_from(RULES),
    zone=st.sampled_from(["America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]),
    first=st.integers(0, 800),
    hour=st.integers(0, 23),
)
def test_most_occurrences_bounds_every_window(rule: str, zone: str, first: int, hour: int) -> None:
    spec = {"schedule": rule} if rule in EXAMPLES else {"rrule": rule, "at": "02:30"}
    c = couple({"kind": "custom", "channels": ["calendar"], **spec}, timezone=zone)
    span = FEED_LIMITS.past + FEED_LIMITS.floor
    start = utc(2026, 1, 1, hour) + timedelta(days=first)
    found = occurrences(c, start, start + span)
    assert len(found) <= most_occurrences(c.rituals[0].recurrence, span)


def test_a_couple_whose_calendar_rituals_cannot_fit_even_eight_weeks_is_refused() -> None:
    daily = [
        {
            "kind": "custom",
            "id": f"r{i}",
            "schedule": "every day at 20:00",
            "channels": ["calendar"],
        }
        for i in range(12)
    ]
    with pytest.raises(CoupleInvalid) as e:
        couple(*daily)
    [problem] = e.value.problems
    assert problem.path == ("rituals",)
    assert "12 calendar rituals can put 1056 events" in problem.message
    assert "take `calendar` out" in problem.message
    weekly = {"kind": "date_night", "schedule": "every friday at 19:30"}
    assert couple(*daily[:11], weekly).rituals  # eleven daily ones and a weekly one fit
