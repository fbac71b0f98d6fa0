"""Where the domain gets "now" from: a ``Clock`` it is given, never the wall clock itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "ManualClock"]


class Clock(Protocol):
    """Tells the current instant as an aware UTC datetime."""

    def now(self) -> datetime: ...


@dataclass
class ManualClock:
    """A clock that moves only when told to; tests and simulations drive it."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def __post_init__(self) -> None:
        if self.current.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")

    def now(self) -> datetime:
        return self.current.astimezone(UTC)

    def advance(self, by: timedelta) -> None:
        self.current = self.current + by

    def set(self, to: datetime) -> None:
        if to.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self.current = to
