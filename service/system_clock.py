"""The wall clock, for the edges only: the CLI and (later) the runtime hand it to the domain."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["SystemClock"]


class SystemClock:
    """The real time, aware and in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)  # SystemClock: the one place Hearth reads the wall clock
