"""The weekly summary's time (the couple file's ``summary:``), its week, and its words."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from service.domain.couples import SummaryTime
from service.domain.errors import CoupleInvalid
from service.domain.segments import segments
from service.domain.summaries import RitualWeek, summary_at, summary_text, summary_week
from tests.domain.builders import couple

CHECK_IN = {"kind": "check_in"}
NY = ZoneInfo("America/New_York")


def test_the_summary_goes_out_on_sunday_at_19_00_by_default_inside_its_week() -> None:
    c = couple(CHECK_IN)
    assert c.summary == SummaryTime(day=6, at=time(19, 0))
    monday = date(2026, 3, 2)
    assert summary_at(c, c.partners[0], monday) == datetime(2026, 3, 8, 19, tzinfo=NY)
    assert summary_week(c, date(2026, 3, 8)) == monday
    assert summary_week(c, date(2026, 3, 9)) is None


@pytest.mark.parametrize(
    ("day", "sent_on"),
    [("monday", date(2026, 3, 9)), ("Sat", date(2026, 3, 14)), ("sunday", date(2026, 3, 8))],
)
def test_another_summary_day_covers_the_last_whole_week(day: str, sent_on: date) -> None:
    c = couple(CHECK_IN, summary={"day": day, "at": "8:15"})
    monday = date(2026, 3, 2)
    assert summary_at(c, c.partners[0], monday) == datetime.combine(sent_on, time(8, 15), NY)
    assert summary_week(c, sent_on) == monday


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        (
            {"day": "sundy"},
            "summary.day: 'sundy' is not a day of the week — did you mean 'sunday'?",
        ),
        ({"day": "xyz"}, "summary.day: 'xyz' is not a day of the week; write it like"),
        ({"at": "25:00"}, "summary.at: '25:00' is not a time of day"),
        ({"dya": "monday"}, "summary.dya: unknown key 'dya' — did you mean 'day'?"),
        ("sunday", "summary: 'sunday' is not a time of the week; write it like {day: sunday"),
    ],
)
def test_a_bad_summary_time_names_the_field_and_the_fix(summary: object, message: str) -> None:
    with pytest.raises(CoupleInvalid) as caught:
        couple(CHECK_IN, summary=summary)
    assert message in str(caught.value)


def test_the_words_name_what_was_kept_the_longest_streak_and_what_slipped() -> None:
    week = [
        RitualWeek("check-in", 6, 6, streak=20, unit="evenings"),
        RitualWeek("date night", 1, 0, streak=0, unit="weeks"),
        RitualWeek("gratitude note", 6, 4, streak=3, unit="times"),
        RitualWeek("affection", 3, 3, optional=True),
    ]
    assert summary_text("Alex", "Sam", week) == (
        "Your week with Sam, Alex: check-in 6/6, date night 0/1, gratitude note 4/6, "
        "affection 3x. Longest streak: check-in, 20 evenings in a row. "
        "Date night slipped a little - maybe pick it up together?"
    )


@pytest.mark.parametrize("names", [("Alexandra", "Samuel"), ("Zoë🌙" * 8, "Łukasz" * 6)])
def test_a_summary_is_never_over_320_characters_or_two_segments(names: tuple[str, str]) -> None:
    many = [RitualWeek(f"ritual number {i}", 7, i % 8, streak=i, unit="days") for i in range(40)]
    text = summary_text(*names, many)
    assert len(text) <= 320
    assert segments(text) <= 2
