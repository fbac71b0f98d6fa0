"""Wall-clock times in IANA zones, and the one rule that turns them into instants.

RFC 5545 §3.3.5 decides every ambiguous case, and so does Hearth, everywhere:
- a local time that falls in a spring-forward gap is read with the UTC offset in force
  *before* the gap, so 02:30 on the night clocks jump 02:00 -> 03:00 happens at 03:30;
- a local time that occurs twice at fall-back is the *first* of the two.
PEP 495's ``fold=0`` means exactly this, so the rule is one ``replace`` call; it lives here
so that no other module ever attaches a zone to a naive datetime by itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from difflib import get_close_matches
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = ["parse_time_of_day", "resolve", "zone"]

_TIME = re.compile(r"(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", re.IGNORECASE)


def resolve(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant (aware, UTC) at which naive wall time ``wall`` happens in ``tz`` (RFC 5545)."""
    if wall.tzinfo is not None:
        raise ValueError("resolve() takes a naive wall time")
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


@cache
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` names it, with close matches, when unknown."""
    try:
        if not name or name != name.strip() or name.startswith("/") or ".." in name:
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IsADirectoryError, OSError):
        hint = _zone_hint(name)
        raise ValueError(f"unknown time zone {name!r}{hint}") from None


@lru_cache(maxsize=4096)  # few distinct spellings; shared results save memory per ritual
def parse_time_of_day(text: str) -> time:
    """Read ``21:00``, ``7:30``, ``7:30pm``, ``7pm`` or ``19h30``; else ``ValueError``."""
    m = _TIME.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time of day; write it like 21:00 or 7:30pm")
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    meridiem = (m.group(3) or "").lower().replace(".", "")
    if meridiem:
        if not 1 <= hour <= 12:
            raise ValueError(f"{text!r}: with am/pm the hour runs from 1 to 12")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    elif m.group(2) is None:
        raise ValueError(f"{text!r} is not a time of day; write it like 21:00 or 7pm")
    if hour > 23 or minute > 59:
        raise ValueError(f"{text!r} is not a time of day; hours run 0-23 and minutes 0-59")
    return time(hour, minute)


@cache
def _zone_names() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def _zone_hint(name: str) -> str:
    names = _zone_names()
    exact = names.get(name.strip().lower())
    if exact:
        return f" — did you mean {exact!r}? (zone names are case-sensitive)"
    close = get_close_matches(name.strip().lower(), list(names), n=1, cutoff=0.75)
    if close:
        return f" — did you mean {names[close[0]]!r}?"
    return " (use an IANA name such as 'Europe/Berlin' or 'America/New_York')"
