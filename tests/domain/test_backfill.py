"""DONE yesterday: which occurrence is the previous one, and when it is too old."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from service.domain.backfill import BACKFILL_LIMIT, backfillable, previous_occurrence
from tests.domain.builders import couple

NY = ZoneInfo("America/New_York")
C = couple(
    {"kind": "check_in", "schedule": "every day at 21:00"},
    {"kind": "listening", "schedule": "every saturday at 21:00"},
    {"kind": "gratitude", "schedule": "every day at 12:30"},
    partners=[
        {"name": "Alex", "phone": "+15550000001"},
        {"name": "Sam", "phone": "+15550000002", "timezone": "Europe/London"},
    ],
)


def _ny(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=NY)


def test_yesterday_is_yesterdays_occurrence_next_morning_and_next_evening() -> None:
    ritual = C.ritual("check_in")
    for received in (_ny(3, 8), _ny(3, 22)):
        occ = previous_occurrence(C, ritual, "alex", received)
        assert occ is not None
        assert occ.id == "alex-sam/check_in/20260302T2100"
        assert backfillable(occ, received)


def test_a_weekly_ritual_backfills_its_last_occurrence_while_it_is_48_hours_old() -> None:
    ritual = C.ritual("listening")
    occ = previous_occurrence(C, ritual, "alex", _ny(2, 20))  # a Monday; Saturday 28 Feb
    assert occ is not None
    assert occ.id == "alex-sam/listening/20260228T2100"
    assert backfillable(occ, _ny(2, 20, 59))
    assert not backfillable(occ, _ny(2, 21, 1))


def test_48_hours_are_elapsed_hours_across_the_spring_forward() -> None:
    # Saturday 7 March 21:00 EST; clocks go forward on Sunday 8 March, so 48 hours later
    # the wall clock reads Monday 9 March 22:00 EDT, not 21:00.
    ritual = C.ritual("listening")
    occ = previous_occurrence(C, ritual, "alex", _ny(9, 21, 30))
    assert occ is not None
    assert occ.start == _ny(7, 21)
    assert _ny(9, 21, 30) - occ.start > BACKFILL_LIMIT  # by the wall clock: 48.5 hours
    assert backfillable(occ, _ny(9, 21, 30))
    assert backfillable(occ, _ny(9, 22))
    assert not backfillable(occ, _ny(9, 22, 1))


def test_a_partner_local_ritual_backfills_the_partners_own_occurrence() -> None:
    ritual = C.ritual("gratitude")
    received = datetime(2026, 3, 3, 9, tzinfo=ZoneInfo("Europe/London"))
    occ = previous_occurrence(C, ritual, "sam", received)
    assert occ is not None
    assert occ.partner == "sam"
    assert occ.id == "alex-sam/gratitude/20260302T1230/sam"


def test_nothing_older_than_eight_days_is_named() -> None:
    late = couple({"kind": "check_in", "schedule": "every day at 21:00", "end": "2026-02-01"})
    assert previous_occurrence(late, late.ritual("check_in"), "alex", _ny(3, 8)) is None
    assert timedelta(hours=48) == BACKFILL_LIMIT
