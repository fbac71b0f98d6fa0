from datetime import UTC, datetime, timedelta, timezone

import pytest

from service.domain.clock import Clock, ManualClock
from service.system_clock import SystemClock


def test_manual_clock_moves_only_when_driven_and_answers_in_utc() -> None:
    clock: Clock = ManualClock(datetime(2026, 3, 8, 1, 59, tzinfo=timezone(timedelta(hours=-5))))
    assert clock.now() == datetime(2026, 3, 8, 6, 59, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(minutes=2))
    assert clock.now() == datetime(2026, 3, 8, 7, 1, tzinfo=UTC)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2027, 1, 1, tzinfo=UTC)


def test_manual_clock_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        ManualClock().set(datetime(2026, 1, 1))


def test_system_clock_is_aware_utc() -> None:
    assert SystemClock().now().tzinfo is UTC
