from datetime import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.schedules import EXAMPLES, parse_rrule, parse_schedule


@pytest.mark.parametrize(
    ("text", "rrule"),
    [
        ("every day at 21:00", "FREQ=DAILY;BYHOUR=21;BYMINUTE=0"),
        ("weekdays at 7:30", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=7;BYMINUTE=30"),
        ("weekends at 10:00", "FREQ=WEEKLY;BYDAY=SA,SU;BYHOUR=10;BYMINUTE=0"),
        ("mon, wed, fri at 08:00", "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=8;BYMINUTE=0"),
        ("every other friday at 19:30", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;BYHOUR=19;BYMINUTE=30"),
        ("every 2 weeks on sat at 11:00", "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA;BYHOUR=11;BYMINUTE=0"),
        ("first saturday of the month at 10:00", "FREQ=MONTHLY;BYDAY=1SA;BYHOUR=10;BYMINUTE=0"),
        ("last sunday of the month at 18:00", "FREQ=MONTHLY;BYDAY=-1SU;BYHOUR=18;BYMINUTE=0"),
        ("monthly on the 15th at 20:00", "FREQ=MONTHLY;BYMONTHDAY=15;BYHOUR=20;BYMINUTE=0"),
        ("3 times a week at 20:00", "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=20;BYMINUTE=0"),
        ("twice a week at 20:00", "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=20;BYMINUTE=0"),
        ("Every Other Friday at 7:30 PM", "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;BYHOUR=19;BYMINUTE=30"),
        ("on mondays and thursdays at 18:00", "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=18;BYMINUTE=0"),
        ("daily at 7pm", "FREQ=DAILY;BYHOUR=19;BYMINUTE=0"),
        ("every 3 days at 09:00", "FREQ=DAILY;INTERVAL=3;BYHOUR=9;BYMINUTE=0"),
        ("monthly on the last day at 20:00", "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=20;BYMINUTE=0"),
    ],
)
def test_friendly_forms_compile_to_rrules(text: str, rrule: str) -> None:
    assert parse_schedule(text).rrule == rrule


def test_every_documented_example_parses() -> None:
    for example in EXAMPLES:
        assert parse_schedule(example).text == example


def test_times_a_week_spreads_evenly_from_monday() -> None:
    days = {
        n: [d for d, _ in parse_schedule(f"{n} times a week at 20:00").by_day] for n in range(1, 8)
    }
    assert days == {
        1: [0],
        2: [0, 3],
        3: [0, 2, 4],
        4: [0, 1, 3, 5],
        5: [0, 1, 2, 4, 5],
        6: [0, 1, 2, 3, 4, 5],
        7: [0, 1, 2, 3, 4, 5, 6],
    }


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("every othr friday at 19:30", "every other friday at 19:30"),
        ("evry day at 21:00", "every day at 21:00"),
        ("weekdyas at 7:30", "weekdays at 7:30"),
        ("first saturdy of the month at 10:00", "first saturday of the month at 10:00"),
    ],
)
def test_misspelt_schedule_suggests_the_nearest_form(text: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match="did you mean") as caught:
        parse_schedule(text)
    assert str(caught.value) == f"{text!r} — did you mean {suggestion!r}?"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("every friday", "add a time"),
        ("every day at 25:00", "hours run 0-23"),
        ("monthly on the 31st at 20:00", "skip every month"),
        ("9 times a week at 20:00", "room for 1 to 7"),
        ("whenever at 20:00", "not a schedule"),
        ("", "not a schedule"),
    ],
)
def test_bad_schedules_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_schedule(text)


def test_raw_rrule_takes_time_from_byhour_or_at() -> None:
    assert parse_rrule("FREQ=MONTHLY;BYDAY=2SA;BYHOUR=10;BYMINUTE=0", None).time == time(10)
    assert parse_rrule("RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", time(9, 15)).time == time(9, 15)


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ("FREQ=HOURLY;BYHOUR=1", "not supported"),
        ("BYDAY=MO;BYHOUR=1", "needs FREQ"),
        ("FREQ=WEEKLY;BYDAY=2MO;BYHOUR=1", "only MONTHLY/YEARLY"),
        ("FREQ=DAILY;BYHOUR=1,2", "one time of day"),
        ("FREQ=DAILY", "no time of day"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20270101;BYHOUR=1", "COUNT and UNTIL"),
        ("FREQ=DAILY;UNTIL=20270101T000000Z;BYHOUR=1", "in UTC"),
        ("FREQ=DAILY;BYHOURS=1", "did you mean 'BYHOUR'"),
        ("FREQ=DAILY;BYHOUR=24", "outside 0..23"),
        ("FREQ=MONTHLY;BYMONTHDAY=0;BYHOUR=1", "outside"),
        ("FREQ=DAILY;INTERVAL=0;BYHOUR=1", "at least 1"),
        ("FREQ=DAILY;FREQ=WEEKLY;BYHOUR=1", "given twice"),
    ],
)
def test_bad_raw_rrules_are_refused_with_reason(rule: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_rrule(rule, None)


@given(st.text(max_size=60))
def test_any_text_either_parses_or_raises_value_error(text: str) -> None:
    try:
        rec = parse_schedule(text)
    except ValueError as e:
        assert str(e)
    else:
        assert rec.rrule.startswith("FREQ=")
