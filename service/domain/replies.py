"""The reply language: what a partner's SMS back to Hearth means.

A reply is one short message, typed on a phone, often in a hurry. Case, NFKC compatibility
forms (full-width letters, ligatures), extra spaces, and punctuation or emoji around a
keyword do not matter; a ``#tag`` anywhere (``#date_night skip``) picks the ritual.

    STOP STOPALL UNSUBSCRIBE CANCEL END QUIT REVOKE OPTOUT   opt out      } whole message
    START UNSTOP YES                                         opt back in  } only, no tag
    HELP INFO                                                help         } whole message,
    RESUME UNPAUSE                                           resume       } a tag allowed
    DONE [note]      also "did it", "finished", "complete(d)", a leading check mark
    DONE yesterday [note]   logs the ritual's previous occurrence (``domain/backfill.py``)
    SKIP [reason]    also "skipping", "pass"
    SNOOZE [span]    also "later", "remind me later"; 30m, 2 hours, 1h30m, 90 (minutes)
    PAUSE [span]     3d, 2 weeks, 12h
    MOVE <when>      also "reschedule"; <when> is read by `parse_when`: sat 20:00, tomorrow 7pm
    anything else    free text, kept as the partner wrote it (it is their journal entry)

The opt-out and opt-in words follow Twilio's default handling, which acts only when the
whole message is the keyword: "stop" opts out, "stop texting me about dishes" and "#dishes
stop" are text. Reading them wider would have Hearth think a partner left while Twilio
still delivers. The one exception leans the safe way: "opt out" and "stop all" count as
opt-out too. "yes" is Twilio's opt-in, so it never means DONE.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TypeVar

from service.domain.durations import parse_duration
from service.domain.errors import HearthError
from service.domain.wallclock import parse_time_of_day

__all__ = [
    "HELP_WORDS",
    "MOVE_HORIZON",
    "MOVE_PROBLEM",
    "OPT_IN_WORDS",
    "OPT_OUT_WORDS",
    "PAUSE_DEFAULT",
    "PAUSE_MAX",
    "PAUSE_MIN",
    "PAUSE_PROBLEM",
    "SNOOZE_DEFAULT",
    "SNOOZE_MAX",
    "SNOOZE_MIN",
    "SNOOZE_PROBLEM",
    "Reply",
    "Verb",
    "WhenNotUnderstood",
    "parse_reply",
    "parse_when",
]


class Verb(StrEnum):
    """What a reply asks for; TEXT is everything else (a note for the couple's journal)."""

    DONE = "done"
    SKIP = "skip"
    SNOOZE = "snooze"
    PAUSE = "pause"
    RESUME = "resume"
    MOVE = "move"
    STOP = "stop"
    START = "start"
    HELP = "help"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Reply:
    """What one reply means. ``problem`` is set when a command was recognised but its
    argument was not usable; it is an SMS-ready answer (GSM-7, one segment)."""

    verb: Verb
    text: str = ""  # DONE note / SKIP reason / MOVE spec / free text; cleaned; may be ""
    span: timedelta | None = None  # SNOOZE and PAUSE: the duration (the default if none given)
    ritual: str | None = None  # the '#tag' selector, lower-case, without '#'
    problem: str | None = None  # what to send instead, when the argument is wrong
    yesterday: bool = False  # DONE yesterday: the previous occurrence, not the open one


class WhenNotUnderstood(HearthError, ValueError):
    """A MOVE's time could not be used; ``str()`` is an SMS-ready answer saying what to send."""


SNOOZE_DEFAULT = timedelta(minutes=30)
SNOOZE_MIN = timedelta(minutes=5)
SNOOZE_MAX = timedelta(hours=12)
PAUSE_DEFAULT = timedelta(days=7)
PAUSE_MIN = timedelta(hours=1)
PAUSE_MAX = timedelta(days=90)

# Lower-case; compared with the casefolded message. Twilio's defaults for long codes.
OPT_OUT_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
)
OPT_IN_WORDS = frozenset({"start", "unstop", "yes"})
HELP_WORDS = frozenset({"help", "info"})

SNOOZE_PROBLEM = "Snooze takes 5m to 12h, such as SNOOZE 30m or SNOOZE 2h."
PAUSE_PROBLEM = "Pause takes 1h to 90d, such as PAUSE 3d or PAUSE 2w."
MOVE_PROBLEM = "Say when, such as MOVE sat 20:00 or MOVE tomorrow 19:30."

MOVE_HORIZON = timedelta(days=60)


def parse_reply(body: str) -> Reply:
    """What the SMS ``body`` means. Total: never raises, whatever the string holds."""
    message = _clean(body)
    word = _trim(message).casefold()
    # Before the selector is taken out: "#dishes stop" is not a keyword to Twilio either.
    if word in OPT_OUT_WORDS or _SQUEEZE.sub("", word) in OPT_OUT_WORDS:
        return Reply(Verb.STOP)
    if word in OPT_IN_WORDS:
        return Reply(Verb.START)
    ritual, rest = _take_selector(message)
    word = _trim(rest).casefold()
    if word in HELP_WORDS:
        return Reply(Verb.HELP, ritual=ritual)
    if word in _RESUME_WORDS:
        return Reply(Verb.RESUME, ritual=ritual)
    return _command(rest, ritual) or Reply(Verb.TEXT, text=rest, ritual=ritual)


def parse_when(spec: str, now: datetime, current: datetime) -> datetime:
    """The naive local wall time (minute precision) that ``spec`` names, such as ``sat 20:00``.

    ``now`` and ``current`` (the occurrence's present start) are aware and in the ritual's
    zone (``current`` is read in ``now``'s zone if it is not). The answer is naive because
    turning it into an instant is the caller's one DST rule. A missing day keeps
    ``current``'s date, a missing time its wall time. The answer is after ``now`` and at
    most 60 days later, else ``WhenNotUnderstood``.
    """
    now_wall = now.replace(tzinfo=None)
    current_wall = _wall_in_zone_of(now, current).replace(second=0, microsecond=0)
    text = _when_text(spec)
    if len(text) > _WHEN_LONGEST:
        raise WhenNotUnderstood(_unreadable(text))
    at: time | None = None
    found = _TIME.search(text)
    if found:
        at = _read_time(found)
        text = f"{text[: found.start()]} {text[found.end() :]}"
    words = [w for w in text.split() if w not in _FILLERS]
    if not words and at is None:
        raise WhenNotUnderstood(MOVE_PROBLEM)
    day, weekly = (current_wall.date(), False) if not words else _read_day(words, now_wall)
    wall = datetime.combine(day, at if at is not None else current_wall.time())
    if wall <= now_wall:
        # "sat 9am" sent on Saturday at noon means next Saturday; a date cannot roll.
        if not weekly:
            raise WhenNotUnderstood(_PASSED)
        wall = _shift(wall, 7)
    if wall - now_wall > MOVE_HORIZON:
        raise WhenNotUnderstood(_TOO_FAR)
    return wall


# --- the reply language ------------------------------------------------------------------

_LONGEST_BODY = 1600  # ten SMS segments; anything longer is not a reply worth the work
_RESUME_WORDS = frozenset({"resume", "unpause"})
_CHECKS = "\u2705\u2714\u2611\u2713"  # ✅ ✔ ☑ ✓
_VARIATIONS = "\ufe0e\ufe0f"  # text / emoji presentation selectors; ✔️ is ✔ plus one
_SQUEEZE = re.compile(r"[\s._-]+")
# A ritual id is a slug; a tag must hold a letter so "my #1" stays a journal word.
_SELECTOR = re.compile(r"(?<![0-9A-Za-z_#])#([0-9A-Za-z][0-9A-Za-z_-]{0,62})(?![0-9A-Za-z_-])")
_TAG_SEPARATORS = ":;,-\u2013\u2014 "
_CLOSERS = ".,!?;:)\u2026"  # "loved it #gratitude." reads "loved it." without the tag
_DONE = re.compile(r"(?:done|did\s+it|finished|completed|complete)(?!\w)", re.IGNORECASE)
_YESTERDAY = re.compile(r"yesterday(?!\w)", re.IGNORECASE)
_SKIP = re.compile(r"(?:skip|skipping|pass)(?!\w)", re.IGNORECASE)
_SNOOZE = re.compile(r"snooze(?!\w)", re.IGNORECASE)
# "later" and "remind me" also open ordinary sentences, so without a readable span they
# are text, not a snooze with a problem.
_LATER = re.compile(r"(?:remind\s+me\s+later|later)(?!\w)", re.IGNORECASE)
_PAUSE = re.compile(r"pause(?!\w)", re.IGNORECASE)
_MOVE = re.compile(r"(?:move|reschedule)(?!\w)", re.IGNORECASE)
_SPAN_FILLER = re.compile(r"^(?:for|in|by)(?!\w)\s*")
_ONE = re.compile(r"\b(?:an?|one)\s+(?=[a-z])")
_BARE_NUMBER = re.compile(r"[0-9]{1,4}")
_SPAN_LONGEST = 40


def _clean(body: str) -> str:
    # Cut before normalising so the work is bounded, and after, because NFKC can expand.
    raw = body[:_LONGEST_BODY]
    # Lone surrogates are legal in a str but not in UTF-8, which every store downstream uses.
    raw = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in raw)
    raw = unicodedata.normalize("NFKC", raw)
    raw = "".join(c for c in raw if c.isspace() or unicodedata.category(c) != "Cc")
    return " ".join(raw[:_LONGEST_BODY].split())


def _trim(text: str) -> str:
    """``text`` without the punctuation, emoji and spaces around its letters and digits."""
    start, end = 0, len(text)
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return text[start:end]


def _take_selector(message: str) -> tuple[str | None, str]:
    for found in _SELECTOR.finditer(message):
        tag = found.group(1).lower()
        if any(c.isalpha() for c in tag):
            before, after = message[: found.start()].rstrip(), message[found.end() :].lstrip()
            if not before:
                # "#gratitude: Sam's laugh" - the colon belonged to the tag, not the entry.
                after = after.lstrip(_TAG_SEPARATORS)
            elif after and after[0] not in _CLOSERS:
                after = " " + after
            return tag, before + after
    return None, message


def _command(rest: str, ritual: str | None) -> Reply | None:
    start = 0
    while start < len(rest) and not (rest[start].isalnum() or rest[start] in _CHECKS):
        start += 1
    lead = rest[start:]
    if lead and lead[0] in _CHECKS:
        after = lead.lstrip(_CHECKS + _VARIATIONS + " ")
        # "✅ done, lovely" is one DONE whose note is "lovely", not "done, lovely".
        found = _DONE.match(after)
        return _done(_note(after[found.end() :] if found else after), ritual)
    if found := _DONE.match(lead):
        return _done(_note(lead[found.end() :]), ritual)
    if found := _SKIP.match(lead):
        return Reply(Verb.SKIP, text=_note(lead[found.end() :]), ritual=ritual)
    if found := _SNOOZE.match(lead):
        return _spanned(Verb.SNOOZE, lead[found.end() :], ritual, soft=False)
    if found := _LATER.match(lead):
        return _spanned(Verb.SNOOZE, lead[found.end() :], ritual, soft=True)
    if found := _PAUSE.match(lead):
        return _spanned(Verb.PAUSE, lead[found.end() :], ritual, soft=False)
    if found := _MOVE.match(lead):
        spec = _note(lead[found.end() :])
        problem = None if _trim(spec) else MOVE_PROBLEM
        return Reply(Verb.MOVE, text=spec, ritual=ritual, problem=problem)
    return None


def _done(note: str, ritual: str | None) -> Reply:
    """DONE with its note; "yesterday" as the note's first word makes it a backfill (the
    rest, if any, is the note: "done yesterday - lovely walk")."""
    if found := _YESTERDAY.match(note):
        return Reply(Verb.DONE, text=_note(note[found.end() :]), ritual=ritual, yesterday=True)
    return Reply(Verb.DONE, text=note, ritual=ritual)


def _note(after: str) -> str:
    """What follows a keyword, without the punctuation that joined it ("done - lovely")."""
    start = 0
    while start < len(after) and (
        after[start].isspace() or unicodedata.category(after[start]).startswith("P")
    ):
        start += 1
    return after[start:].strip()


def _spanned(verb: Verb, after: str, ritual: str | None, *, soft: bool) -> Reply | None:
    snooze = verb is Verb.SNOOZE
    default, least, most = (
        (SNOOZE_DEFAULT, SNOOZE_MIN, SNOOZE_MAX)
        if snooze
        else (PAUSE_DEFAULT, PAUSE_MIN, PAUSE_MAX)
    )
    problem = SNOOZE_PROBLEM if snooze else PAUSE_PROBLEM
    words = _SPAN_FILLER.sub("", _trim(after).lower())
    if not words:
        return Reply(verb, span=default, ritual=ritual)
    span = _read_span(words, bare_unit=timedelta(minutes=1) if snooze else None)
    if span is None and soft:
        return None
    if span is None or not least <= span <= most:
        return Reply(verb, ritual=ritual, problem=problem)
    return Reply(verb, span=span, ritual=ritual)


def _read_span(words: str, *, bare_unit: timedelta | None) -> timedelta | None:
    if len(words) > _SPAN_LONGEST:
        return None
    if _BARE_NUMBER.fullmatch(words):
        # A bare number is minutes for a snooze; for a pause, hours and days are both likely.
        return int(words) * bare_unit if bare_unit else None
    try:
        return parse_duration(_ONE.sub("1 ", words))
    except ValueError:
        return None


# --- times for MOVE ----------------------------------------------------------------------

_WHEN_LONGEST = 60
_FILLERS = frozenset({"to", "on", "at", "for", "it", "this", "the", "@"})
_MERIDIEM = re.compile(r"(?<=[0-9])\s*([ap])\.\s*m\b\.?")
_TIME = re.compile(
    r"(?<![\w:./-])(?:(?P<word>noon|midday|midnight)"
    r"|(?P<clock>[0-9]{1,2}(?:[:.][0-9]{2})?\s*[ap]m|[0-9]{1,2}[:.][0-9]{2}|[0-9]{1,2}h(?:[0-9]{2})?))"
    r"(?![\w:])",
    re.ASCII,
)
_WEEKDAYS = {
    **dict.fromkeys(("mon", "monday"), 0),
    **dict.fromkeys(("tue", "tues", "tuesday"), 1),
    **dict.fromkeys(("wed", "weds", "wednesday"), 2),
    **dict.fromkeys(("thu", "thur", "thurs", "thursday"), 3),
    **dict.fromkeys(("fri", "friday"), 4),
    **dict.fromkeys(("sat", "saturday"), 5),
    **dict.fromkeys(("sun", "sunday"), 6),
}
_MONTHS = {
    **dict.fromkeys(("jan", "january"), 1),
    **dict.fromkeys(("feb", "february"), 2),
    **dict.fromkeys(("mar", "march"), 3),
    **dict.fromkeys(("apr", "april"), 4),
    **dict.fromkeys(("may",), 5),
    **dict.fromkeys(("jun", "june"), 6),
    **dict.fromkeys(("jul", "july"), 7),
    **dict.fromkeys(("aug", "august"), 8),
    **dict.fromkeys(("sep", "sept", "september"), 9),
    **dict.fromkeys(("oct", "october"), 10),
    **dict.fromkeys(("nov", "november"), 11),
    **dict.fromkeys(("dec", "december"), 12),
}
_WEEKDAY = re.compile(r"(next\s+)?([a-z]+)")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_SLASHED = re.compile(r"[0-9]{1,4}/[0-9]{1,2}(?:/[0-9]{1,4})?")
_ORDINAL = r"([0-9]{1,2})(?:st|nd|rd|th)?"
_MONTH_DAY = re.compile(rf"([a-z]+)\s+{_ORDINAL}(?:\s+([0-9]{{4}}))?")
_DAY_MONTH = re.compile(rf"{_ORDINAL}\s+(?:of\s+)?([a-z]+)(?:\s+([0-9]{{4}}))?")
_HOUR = re.compile(r"[0-9]{1,2}")
_Day = TypeVar("_Day", date, datetime)
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXAMPLES = "Try MOVE sat 20:00 or MOVE tomorrow 19:30."
_PASSED = "That time has passed. Try a later one, such as MOVE tomorrow 19:30."
_TOO_FAR = "That is more than 60 days away. Pick a day within 60 days, such as MOVE sat 20:00."
_MIDNIGHT = "Midnight could be either side of a day. Say 23:30 or 00:30, such as MOVE fri 23:30."


def _wall_in_zone_of(now: datetime, moment: datetime) -> datetime:
    """``moment``'s wall time in ``now``'s zone: a ``current`` handed over in UTC by mistake
    would otherwise move the occurrence by the zone's offset."""
    if moment.tzinfo is not None and now.tzinfo is not None and moment.tzinfo is not now.tzinfo:
        # At the calendar's ends conversion overflows; the wall time as given is all there is.
        with contextlib.suppress(OverflowError, ValueError):
            moment = moment.astimezone(now.tzinfo)
    return moment.replace(tzinfo=None)


def _when_text(spec: str) -> str:
    text = _clean(spec).lower().replace(",", " ").replace("@", " @ ")
    return " ".join(_MERIDIEM.sub(r"\1m", _trim(text)).split())


def _read_time(found: re.Match[str]) -> time:
    if found.group("word") == "midnight":
        raise WhenNotUnderstood(_MIDNIGHT)
    if found.group("word"):
        return time(12, 0)
    clock = found.group("clock")
    try:
        return parse_time_of_day(clock + "00" if clock.endswith("h") else clock)
    except ValueError:
        raise WhenNotUnderstood(
            f"'{_quote(clock)}' is not a time of day. Try 20:00 or 8pm, such as MOVE sat 20:00."
        ) from None


def _read_day(words: list[str], now_wall: datetime) -> tuple[date, bool]:
    """The date ``words`` name, and whether it was a weekday (which may roll a week on)."""
    text = " ".join(words)
    today = now_wall.date()
    if text in ("today", "tonight"):
        return today, False
    if text in ("tomorrow", "tmrw", "tmr", "tmw"):
        return _shift(today, 1), False
    if (found := _WEEKDAY.fullmatch(text)) and found.group(2) in _WEEKDAYS:
        ahead = (_WEEKDAYS[found.group(2)] - today.weekday()) % 7
        return _shift(today, ahead + (7 if found.group(1) else 0)), True
    if found := _ISO_DATE.fullmatch(text):
        year, month, day = (int(g) for g in found.groups())
        return _date(year, month, day, text, now_wall), False
    if _SLASHED.fullmatch(text):
        raise WhenNotUnderstood(
            f"I can't tell if '{_quote(text)}' is day or month first. "
            f"Try a weekday or a date like {_example(now_wall)}, such as MOVE sat 20:00."
        )
    for pattern, day_group, month_group in ((_MONTH_DAY, 2, 1), (_DAY_MONTH, 1, 2)):
        found = pattern.fullmatch(text)
        if found and found.group(month_group) in _MONTHS:
            month, day = _MONTHS[found.group(month_group)], int(found.group(day_group))
            if found.group(3):
                return _date(int(found.group(3)), month, day, text, now_wall), False
            return _nearest(month, day, text, now_wall), False
    hours = [w for w in words if _HOUR.fullmatch(w)]
    if hours:
        raise WhenNotUnderstood(_which_hour(int(hours[0])))
    raise WhenNotUnderstood(_unreadable(text))


def _date(year: int, month: int, day: int, text: str, now_wall: datetime) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise WhenNotUnderstood(_no_such_date(text, now_wall)) from None


def _nearest(month: int, day: int, text: str, now_wall: datetime) -> date:
    """``month``/``day`` next time it comes round, unless it went by in the last 60 days:
    "jan 3" in late December is next year's, but "dec 5" on December 10th is this year's
    (and so has passed), which is a truer answer than "more than 60 days away"."""
    today = now_wall.date()
    candidates = []
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            candidates.append(date(year, month, day))
        except ValueError:
            continue  # no Feb 29 that year, or beyond the calendar's ends
    if not candidates:
        raise WhenNotUnderstood(_no_such_date(text, now_wall))
    recent = [d for d in candidates if (d - today).days >= -MOVE_HORIZON.days]
    return min(recent) if recent else max(candidates)


def _shift(day: _Day, days: int) -> _Day:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        raise WhenNotUnderstood(_TOO_FAR) from None


def _which_hour(hour: int) -> str:
    if 1 <= hour <= 12:
        return f"Is {hour} morning or evening? Try {hour}am or {hour}pm, such as MOVE sat {hour}pm."
    if hour <= 23:
        return f"Add the minutes, such as MOVE sat {hour:02d}:00."
    return _unreadable(str(hour))


def _example(now_wall: datetime) -> str:
    try:
        return (now_wall.date() + timedelta(days=7)).isoformat()
    except OverflowError:
        return now_wall.date().isoformat()


def _no_such_date(text: str, now_wall: datetime) -> str:
    return f"There is no {_quote(text)}. Try MOVE sat 20:00 or MOVE {_example(now_wall)} 20:00."


def _unreadable(text: str) -> str:
    return f"I couldn't read '{_quote(text)}'. {_EXAMPLES}"


def _quote(text: str) -> str:
    """At most 20 characters of what the partner sent, in characters one SMS segment holds."""
    cut = text[:20] + ("..." if len(text) > 20 else "")
    return "".join(c if c in _GSM7_BASIC else "?" for c in cut)
