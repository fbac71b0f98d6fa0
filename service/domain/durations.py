"""Durations as couples write them: ``45m``, ``1h30m``, ``2d``, ``1w``, or ISO 8601 ``PT45M``."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache

__all__ = ["format_duration", "parse_duration"]

# Nothing in a ritual spans more than a year; larger numbers are typos.
_LONGEST = timedelta(days=366)
_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_FRIENDLY = re.compile(
    r"(?:(\d+)\s*w)?\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?"
)
_ISO = re.compile(
    r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?",
)
# Long unit words people type ("2 days", "30 minutes") are folded onto the short units.
_WORDS = re.compile(
    r"(\d+)\s*(weeks?|wks?|days?|hours?|hrs?|minutes?|mins?|seconds?|secs?)\b", re.IGNORECASE
)


@lru_cache(maxsize=4096)  # few distinct spellings; shared results save memory per ritual
def parse_duration(text: str) -> timedelta:
    """Read a duration; raise ``ValueError`` naming the text when it is not one.

    Accepts ``45m``, ``1h30m``, ``2d``, ``1w``, ``90s``, ``2 days``, ``PT45M``, ``P1DT2H``.
    Zero and negative durations are rejected: every use in Hearth needs a positive span.
    """
    raw = text.strip()
    folded = _WORDS.sub(lambda m: m.group(1) + m.group(2)[0].lower(), raw).replace(" ", "")
    for pattern, flags in ((_ISO, 0), (_FRIENDLY, re.IGNORECASE)):
        m = re.fullmatch(pattern.pattern, folded, flags | pattern.flags)
        if m and any(m.groups()):
            w, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
            try:
                span = timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
            except OverflowError:
                span = _LONGEST + _LONGEST
            if span > _LONGEST:
                raise ValueError(f"duration {raw!r} is longer than a year")
            if span <= timedelta(0):
                raise ValueError(f"duration {raw!r} must be longer than zero")
            return span
    raise ValueError(f"{raw!r} is not a duration; write it like 45m, 1h30m, 2d, 1w or PT45M")


def format_duration(span: timedelta) -> str:
    """The shortest friendly spelling: ``timedelta(hours=1, minutes=30)`` -> ``1h30m``."""
    seconds = int(span.total_seconds())
    if seconds <= 0:
        return "0m"
    out = ""
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out
