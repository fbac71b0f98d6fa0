"""Schedules: the friendly forms couples write, and raw RRULEs, compiled to one ``Recurrence``.

Every schedule is an RFC 5545 recurrence rule over *local dates* plus one wall-clock time of
day. Expansion and time-zone resolution live in ``recurrence.py``; this module only reads
text and says, precisely, what is wrong with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, time
from difflib import get_close_matches
from enum import StrEnum
from functools import lru_cache

from service.domain.wallclock import parse_time_of_day

__all__ = ["EXAMPLES", "Freq", "Recurrence", "parse_rrule", "parse_schedule"]

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")

EXAMPLES = (
    "every day at 21:00",
    "weekdays at 7:30",
    "weekends at 10:00",
    "mon, wed, fri at 08:00",
    "every other friday at 19:30",
    "every 2 weeks on sat at 11:00",
    "first saturday of the month at 10:00",
    "last sunday of the month at 18:00",
    "monthly on the 15th at 20:00",
    "3 times a week at 20:00",
)


class Freq(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    YEARLY = "YEARLY"


@dataclass(frozen=True, slots=True)
class Recurrence:
    """An RFC 5545 rule over local dates, firing at ``time`` (wall clock) on each of them.

    ``by_day`` holds ``(weekday, nth)`` pairs: weekday 0 is Monday, nth 0 means every such
    weekday in the period, 1 the first, -1 the last. ``until`` is a local date, inclusive.
    """

    text: str
    freq: Freq
    time: time
    interval: int = 1
    by_day: tuple[tuple[int, int], ...] = ()
    by_month_day: tuple[int, ...] = ()
    by_month: tuple[int, ...] = ()
    by_set_pos: tuple[int, ...] = ()
    by_year_day: tuple[int, ...] = ()
    by_week_no: tuple[int, ...] = ()
    count: int | None = None
    until: date | None = None
    week_start: int = 0

    @property
    def rrule(self) -> str:
        """The rule as an RFC 5545 RRULE value, with the time of day as BYHOUR/BYMINUTE."""
        parts = [f"FREQ={self.freq.value}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.count is not None:
            parts.append(f"COUNT={self.count}")
        if self.until is not None:
            parts.append(f"UNTIL={self.until:%Y%m%d}")
        if self.by_month:
            parts.append("BYMONTH=" + _ints(self.by_month))
        if self.by_week_no:
            parts.append("BYWEEKNO=" + _ints(self.by_week_no))
        if self.by_year_day:
            parts.append("BYYEARDAY=" + _ints(self.by_year_day))
        if self.by_month_day:
            parts.append("BYMONTHDAY=" + _ints(self.by_month_day))
        if self.by_day:
            parts.append(
                "BYDAY=" + ",".join(f"{n or ''}{WEEKDAYS[d]}" for d, n in self.by_day),
            )
        parts.append(f"BYHOUR={self.time.hour};BYMINUTE={self.time.minute}")
        if self.by_set_pos:
            parts.append("BYSETPOS=" + _ints(self.by_set_pos))
        if self.week_start != 0:
            parts.append(f"WKST={WEEKDAYS[self.week_start]}")
        return ";".join(parts)

    @property
    def per_period(self) -> int | None:
        """How many occurrences every active period holds, when that number never varies.

        Then an occurrence's ordinal is arithmetic on periods, which is how alternating
        planners stay cheap and stable (see ``recurrence.ordinal``); ``None`` otherwise.
        """
        plain_weekly = self.freq is Freq.WEEKLY and self.by_day and not self._other_parts
        if plain_weekly and all(n == 0 for _, n in self.by_day) and not self.by_month_day:
            return len(set(self.by_day))
        return 1 if self.one_per_period else None

    @property
    def _other_parts(self) -> bool:
        return bool(self.by_set_pos or self.by_year_day or self.by_week_no or self.by_month)

    @property
    def one_per_period(self) -> bool:
        """True when every period (day, week, month) holds exactly one occurrence."""
        if self._other_parts:
            return False
        if self.freq is Freq.DAILY:
            return not self.by_day and not self.by_month_day
        if self.freq is Freq.WEEKLY:
            return len(self.by_day) == 1 and self.by_day[0][1] == 0 and not self.by_month_day
        if self.freq is Freq.MONTHLY:
            if len(self.by_day) == 1 and not self.by_month_day:
                return self.by_day[0][1] in (1, 2, 3, 4, -1)
            return (
                not self.by_day
                and len(self.by_month_day) == 1
                and (1 <= self.by_month_day[0] <= 28 or self.by_month_day[0] == -1)
            )
        return False


def parse_schedule(text: str) -> Recurrence:
    """Compile a friendly schedule ("every other friday at 19:30") or raise ``ValueError``.

    The error message quotes the text and, when a near spelling parses, suggests it.
    """
    return _parse_schedule_cached(text.strip())


@lru_cache(maxsize=8192)
def parse_rrule(text: str, at: time | None) -> Recurrence:
    """Compile a raw RFC 5545 RRULE value; the time of day comes from BYHOUR/BYMINUTE or ``at``.

    Rules finer than daily, BYSECOND and several times a day are refused: an occurrence is
    one local date at one wall time, which is what keeps ids and DST handling exact.
    """
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    parts: dict[str, str] = {}
    for chunk in filter(None, body.split(";")):
        name, sep, value = chunk.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            raise ValueError(f"{chunk!r} is not NAME=VALUE")
        if name in parts:
            raise ValueError(f"{name} is given twice")
        if name not in _RRULE_PARTS:
            hint = get_close_matches(name, _RRULE_PARTS, n=1)
            raise ValueError(
                f"unknown rule part {name!r}" + (f" — did you mean {hint[0]!r}?" if hint else "")
            )
        parts[name] = value.strip().upper()
    if "FREQ" not in parts:
        raise ValueError("a rule needs FREQ (DAILY, WEEKLY, MONTHLY or YEARLY)")
    try:
        freq = Freq(parts["FREQ"])
    except ValueError:
        raise ValueError(
            f"FREQ={parts['FREQ']} is not supported; use DAILY, WEEKLY, MONTHLY or YEARLY"
        ) from None
    if "COUNT" in parts and "UNTIL" in parts:
        raise ValueError("COUNT and UNTIL cannot both be given (RFC 5545 §3.3.10)")
    if "BYSECOND" in parts and parts["BYSECOND"] != "0":
        raise ValueError("BYSECOND is not supported; prompts fire on the minute")
    hours = _int_list(parts, "BYHOUR", 0, 23)
    minutes = _int_list(parts, "BYMINUTE", 0, 59)
    if len(hours) > 1 or len(minutes) > 1:
        raise ValueError("one time of day per ritual: give BYHOUR and BYMINUTE a single value")
    if hours and at is not None:
        raise ValueError("the time is given twice: use BYHOUR/BYMINUTE or `at`, not both")
    if hours:
        when = time(hours[0], minutes[0] if minutes else 0)
    elif at is not None:
        if minutes:
            raise ValueError("BYMINUTE without BYHOUR; give the time with `at` instead")
        when = at
    else:
        raise ValueError("the rule has no time of day: add BYHOUR and BYMINUTE, or `at: 19:30`")
    by_day = tuple(_by_day(v, freq) for v in parts["BYDAY"].split(",")) if "BYDAY" in parts else ()
    week_start = 0
    if "WKST" in parts:
        if parts["WKST"] not in WEEKDAYS:
            raise ValueError(f"WKST={parts['WKST']} is not a weekday (MO..SU)")
        week_start = WEEKDAYS.index(parts["WKST"])
    rec = Recurrence(
        text=text.strip(),
        freq=freq,
        time=when,
        interval=_positive(parts, "INTERVAL") or 1,
        by_day=by_day,
        by_month_day=_int_list(parts, "BYMONTHDAY", -31, 31, nonzero=True),
        by_month=_int_list(parts, "BYMONTH", 1, 12),
        by_set_pos=_int_list(parts, "BYSETPOS", -366, 366, nonzero=True),
        by_year_day=_int_list(parts, "BYYEARDAY", -366, 366, nonzero=True),
        by_week_no=_int_list(parts, "BYWEEKNO", -53, 53, nonzero=True),
        count=_positive(parts, "COUNT"),
        until=_until(parts["UNTIL"]) if "UNTIL" in parts else None,
        week_start=week_start,
    )
    if rec.by_set_pos and not (rec.by_day or rec.by_month_day or rec.by_year_day):
        raise ValueError("BYSETPOS needs another BYxxx part to pick from")
    return rec


# --- friendly forms -------------------------------------------------------------------

_DAY_WORDS = {
    "mo": 0, "mon": 0, "monday": 0, "mondays": 0,
    "tu": 1, "tue": 1, "tues": 1, "tuesday": 1, "tuesdays": 1,
    "we": 2, "wed": 2, "weds": 2, "wednesday": 2, "wednesdays": 2,
    "th": 3, "thu": 3, "thur": 3, "thurs": 3, "thursday": 3, "thursdays": 3,
    "fr": 4, "fri": 4, "friday": 4, "fridays": 4,
    "sa": 5, "sat": 5, "saturday": 5, "saturdays": 5,
    "su": 6, "sun": 6, "sunday": 6, "sundays": 6,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3,
    "fourth": 4, "4th": 4, "last": -1,
}  # fmt: skip
_COUNTS = {
    "once": 1, "twice": 2, "thrice": 3, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "other": 2,
}  # fmt: skip
_KEYWORDS = {
    "every", "each", "day", "days", "daily", "everyday", "weekday", "weekdays", "weekend",
    "weekends", "other", "week", "weeks", "weekly", "on", "the", "of", "month", "monthly",
    "times", "time", "a", "per", "at", "and", "am", "pm",
}  # fmt: skip
_VOCABULARY = sorted(_KEYWORDS | set(_DAY_WORDS) | set(_ORDINALS) | set(_COUNTS))

_DAY = "(?:" + "|".join(sorted(_DAY_WORDS, key=len, reverse=True)) + ")"
_DAYLIST = rf"{_DAY}(?:\s*(?:,|&|\band\b|\s)\s*{_DAY})*"
_NUM = r"(?:\d+|" + "|".join(_COUNTS) + ")"
_ORD = "(?:" + "|".join(_ORDINALS) + ")"

_Builder = Callable[["re.Match[str]", str, time], Recurrence]


def _daily(m: re.Match[str], text: str, at: time) -> Recurrence:
    return Recurrence(
        text, Freq.DAILY, at, interval=_count(n) if (n := m.groupdict().get("n")) else 1
    )


def _weekdays(m: re.Match[str], text: str, at: time) -> Recurrence:
    return Recurrence(text, Freq.WEEKLY, at, by_day=tuple((d, 0) for d in range(5)))


def _weekends(m: re.Match[str], text: str, at: time) -> Recurrence:
    return Recurrence(text, Freq.WEEKLY, at, by_day=((5, 0), (6, 0)))


def _weekly(m: re.Match[str], text: str, at: time) -> Recurrence:
    interval = _count(m.group("n")) if m.groupdict().get("n") else 1
    return Recurrence(text, Freq.WEEKLY, at, interval=interval, by_day=_days(m.group("days")))


def _nth_weekday(m: re.Match[str], text: str, at: time) -> Recurrence:
    nth = _ORDINALS[m.group("ord")]
    day = _DAY_WORDS[m.group("day")]
    return Recurrence(text, Freq.MONTHLY, at, by_day=((day, nth),))


def _month_day(m: re.Match[str], text: str, at: time) -> Recurrence:
    raw = m.group("nth") or m.group("nth2")
    if raw == "last":
        return Recurrence(text, Freq.MONTHLY, at, by_month_day=(-1,))
    day = int(re.sub(r"\D", "", raw))
    if not 1 <= day <= 31:
        raise ValueError(f"{text!r}: a month has days 1 to 31")
    if day > 28:
        raise ValueError(
            f"{text!r} would skip every month without a {raw}; "
            "use 'monthly on the last day at …' or a raw `rrule:`"
        )
    return Recurrence(text, Freq.MONTHLY, at, by_month_day=(day,))


def _times_a_week(m: re.Match[str], text: str, at: time) -> Recurrence:
    n = _count(m.group("n"))
    if not 1 <= n <= 7:
        raise ValueError(f"{text!r}: a week has room for 1 to 7 times")
    # Spread evenly from Monday: floor(i * 7 / n) gives Mon/Wed/Fri for 3, Mon/Thu for 2.
    return Recurrence(text, Freq.WEEKLY, at, by_day=tuple((i * 7 // n, 0) for i in range(n)))


_FORMS: tuple[tuple[re.Pattern[str], _Builder], ...] = (
    (re.compile(r"(?:every ?day|daily|each day)"), _daily),
    (re.compile(rf"every (?P<n>{_NUM}) days?"), _daily),
    (re.compile(r"(?:(?:every|each|on) )?weekdays?"), _weekdays),
    (re.compile(r"(?:(?:every|each|on) )?weekends?"), _weekends),
    (re.compile(rf"every (?P<n>other) (?P<days>{_DAYLIST})"), _weekly),
    (re.compile(rf"every (?P<n>{_NUM}) weeks? on (?P<days>{_DAYLIST})"), _weekly),
    (re.compile(rf"(?:(?:every|each) week|weekly) on (?P<days>{_DAYLIST})"), _weekly),
    (re.compile(rf"(?:(?:every|each|on) )?(?P<days>{_DAYLIST})"), _weekly),
    (
        re.compile(
            rf"(?:on )?(?:the )?(?P<ord>{_ORD}) (?P<day>{_DAY}) of (?:the|every|each) month"
        ),
        _nth_weekday,
    ),
    (
        re.compile(
            r"(?:(?:monthly|every month|each month) on the (?P<nth>\d{1,2}(?:st|nd|rd|th)?|last)"
            r"(?: day)?)|(?:on )?the (?P<nth2>\d{1,2}(?:st|nd|rd|th)?|last)(?: day)? of "
            r"(?:the|every|each) month"
        ),
        _month_day,
    ),
    (re.compile(rf"(?P<n>{_NUM}) (?:times? )?(?:a|per|each|every) week"), _times_a_week),
)


@lru_cache(maxsize=32768)
def _parse_schedule_cached(text: str) -> Recurrence:
    rec = _try_forms(text)
    if rec is not None:
        return rec
    suggestion = _suggest(text)
    if suggestion is not None:
        raise ValueError(f"{text!r} — did you mean {suggestion!r}?")
    raise ValueError(
        f"{text!r} is not a schedule Hearth can read; write it like "
        + ", ".join(repr(e) for e in EXAMPLES[:5])
        + ", or give a raw `rrule:`"
    )


def _try_forms(text: str) -> Recurrence | None:
    norm = re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip()
    what, sep, when = norm.rpartition(" at ")
    if not sep:
        if _match_what(norm) is not None:
            raise ValueError(f"{text!r} says which days but not when: add a time, like ' at 21:00'")
        return None
    try:
        at = parse_time_of_day(when)
    except ValueError as e:
        raise ValueError(f"{text!r}: {e}") from None
    builder_match = _match_what(what.strip().rstrip(","))
    if builder_match is None:
        return None
    builder, m = builder_match
    return builder(m, text, at)


def _match_what(what: str) -> tuple[_Builder, re.Match[str]] | None:
    for pattern, builder in _FORMS:
        m = pattern.fullmatch(what)
        if m:
            return builder, m
    return None


def _suggest(text: str) -> str | None:
    """Replace each unknown word with its nearest known one; suggest it if that then parses."""
    words = re.split(r"(\s+|,)", text.strip())
    changed = False
    for i, word in enumerate(words):
        low = word.lower()
        if not low.isalpha() or low in _VOCABULARY:
            continue
        close = get_close_matches(low, _VOCABULARY, n=1, cutoff=0.7)
        if close:
            words[i], changed = close[0], True
    candidate = "".join(words)
    if not changed:
        return None
    try:
        return candidate if _try_forms(candidate) is not None else None
    except ValueError:
        return None


def _days(text: str) -> tuple[tuple[int, int], ...]:
    found = sorted({_DAY_WORDS[w] for w in re.findall(r"[a-z]+", text) if w in _DAY_WORDS})
    return tuple((d, 0) for d in found)


def _count(word: str) -> int:
    n = int(word) if word.isdigit() else _COUNTS[word]
    if n < 1:
        raise ValueError(f"'{word}' is not a count; use 1 or more")
    return n


# --- raw RRULE parts ------------------------------------------------------------------

_RRULE_PARTS = (
    "FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS",
    "BYYEARDAY", "BYWEEKNO", "BYHOUR", "BYMINUTE", "BYSECOND", "WKST",
)  # fmt: skip


def _by_day(value: str, freq: Freq) -> tuple[int, int]:
    m = re.fullmatch(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)", value.strip())
    if not m:
        raise ValueError(f"BYDAY value {value!r} is not like MO, 2SA or -1SU")
    nth = int(m.group(1)) if m.group(1) else 0
    if nth and freq not in (Freq.MONTHLY, Freq.YEARLY):
        raise ValueError(f"BYDAY={value} numbers a weekday, which only MONTHLY/YEARLY allow")
    if not -53 <= nth <= 53:
        raise ValueError(f"BYDAY={value}: the number must be within ±53")
    return WEEKDAYS.index(m.group(2)), nth


def _int_list(
    parts: dict[str, str], name: str, low: int, high: int, *, nonzero: bool = False
) -> tuple[int, ...]:
    if name not in parts:
        return ()
    out = []
    for raw in parts[name].split(","):
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{name}={parts[name]}: {raw!r} is not a whole number") from None
        if not low <= value <= high or (nonzero and value == 0):
            raise ValueError(f"{name}={parts[name]}: {value} is outside {low}..{high}")
        out.append(value)
    return tuple(out)


def _positive(parts: dict[str, str], name: str) -> int | None:
    if name not in parts:
        return None
    raw = parts[name]
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name}={raw} must be a whole number of at least 1")
    return int(raw)


def _until(raw: str) -> date:
    if raw.endswith("Z"):
        raise ValueError(
            f"UNTIL={raw} is in UTC; write the last local date (UNTIL=20271231) or use `end:`"
        )
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(?:T\d{6})?", raw)
    try:
        if not m:
            raise ValueError(raw)
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise ValueError(f"UNTIL={raw} is not a date like 20271231") from None


def _ints(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)
