"""The wall clock, for the edges only: the CLI and the runtime hand it to the domain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["SystemClock"]


class SystemClock:
    """The real time, aware and in UTC, shifted by ``offset`` (``HEARTH_CLOCK_OFFSET_S``).

    The offset exists for drills and process-level tests: every process of a test run is
    given the same shift, so a due instant chosen by the test arrives in seconds rather than
    at the next whole minute. It is zero in production.
    """

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        # SystemClock: the one place Hearth reads the wall clock
        return datetime.now(UTC) + self.offset
