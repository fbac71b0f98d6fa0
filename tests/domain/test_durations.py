from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45m", timedelta(minutes=45)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("90s", timedelta(seconds=90)),
        ("PT45M", timedelta(minutes=45)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("2 days", timedelta(days=2)),
        ("3 hours", timedelta(hours=3)),
        ("30 minutes", timedelta(minutes=30)),
        (" 1H ", timedelta(hours=1)),
    ],
)
def test_duration_spellings_are_read(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2x", "abc", "0m", "PT0S", "-5m", "1.5h", "P"])
def test_non_durations_and_zero_are_rejected_with_the_text_quoted(text: str) -> None:
    with pytest.raises(
        ValueError, match=repr(text.strip()).replace("(", r"\(").replace(".", r"\.")
    ):
        parse_duration(text)


@given(st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=366)))
def test_format_then_parse_is_the_identity_to_the_second(span: timedelta) -> None:
    whole = timedelta(seconds=int(span.total_seconds()))
    assert parse_duration(format_duration(whole)) == whole
