"""Quiet hours: a partner's nightly window in which no text reaches them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from service.domain.wallclock import parse_time_of_day, resolve

__all__ = ["QuietHours"]


@dataclass(frozen=True, slots=True)
class QuietHours:
    """From ``start`` to ``end`` local time; a window that wraps midnight (22:30-07:30) is fine."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """Read ``"22:30-07:30"``; ``ValueError`` says what is wrong."""
        parts = re.split(r"\s*(?:-|–|to)\s*", text.strip())
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not a window; write it like '22:30-07:30'")
        start, end = (parse_time_of_day(p) for p in parts)
        if start == end:
            raise ValueError(f"{text!r} starts and ends at the same time")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def release(self, due: datetime, tz: ZoneInfo) -> datetime:
        """When a text due at instant ``due`` may go out: ``due`` itself, or the window's end.

        The end is a wall time in ``tz`` resolved by the RFC 5545 rule, so a window ending in
        a spring-forward gap releases at the first instant after the gap.
        """
        local = due.astimezone(tz)
        now = local.time().replace(tzinfo=None)
        today = local.date()
        if self.start < self.end:
            if not self.start <= now < self.end:
                return due
            end_day = today
        elif now >= self.start:
            end_day = today + timedelta(days=1)
        elif now < self.end:
            end_day = today
        else:
            return due
        return max(due, resolve(datetime.combine(end_day, self.end), tz))
