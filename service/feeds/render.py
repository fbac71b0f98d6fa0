"""A partner's calendar feed as RFC 5545 bytes that every calendar app reads the same way.

Why this shape (also in ARCHITECTURE.md):

- **One VEVENT per occurrence, no RRULE.** Readers disagree about recurrence: a daily series
  drifting by the gap unless BYHOUR/BYMINUTE are given, RDATE ignored, Feb 29 in other
  years, EXDATE/RECURRENCE-ID overrides applied late. A list of plain events leaves nothing
  to expand; a skip is an event that is gone, a move is the same UID at a new time with a
  higher SEQUENCE. What a published feed holds stays within calendar clients' limits
  (``service/domain/feed_horizons.py``): each event is rendered once, measured, and the
  rituals' horizons are chosen on those exact sizes.
- **UTC where a wall time has two readings.** An occurrence whose rule time or local start
  or end falls in a spring-forward gap or a fall-back fold, that spans a change (readers
  that compute the end on the wall clock get its length wrong), or that a partner moved, is
  written in UTC: one reading only.
  So is every event in a zone whose DST shift is not whole hours (Australia/Lord_Howe):
  a major reader misapplies even ordinary days there.
- **Our own VTIMEZONE.** One STANDARD/DAYLIGHT component per transition in the feed's
  window, each with its own DTSTART, and no RRULE or RDATE (icalendar's generator uses
  RDATE, which one reader ignores). Ordinary events carry TZID, so apps show them in the
  couple's zone.
- **Stable bytes for stable content.** DTSTAMP and LAST-MODIFIED are when the event's
  content last changed (the ritual's version, or the skip/move), never "now"; SEQUENCE is
  the ritual's version plus the occurrence's change revision, so it only ever rises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

from icalendar import (
    Alarm,
    Calendar,
    Event,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vDuration,
)

from service.domain.changes import NO_CHANGES, Changes
from service.domain.couples import Couple, Partner
from service.domain.feed_horizons import FEED_LIMITS, Candidate, FeedLimits, feed_horizons
from service.domain.occurrences import Occurrence, occurrences
from service.domain.texts import render

__all__ = [
    "Feed",
    "FeedStamps",
    "feed_occurrences",
    "published_feed",
    "render_feed",
    "shown_to",
]

REFRESH = timedelta(hours=1)
PRODID = "-//Hearth//Rituals//EN"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FeedStamps:
    """What makes SEQUENCE and DTSTAMP stable: versions and when they changed."""

    # ritual id -> (version, when its calendar content last changed)
    rituals: Mapping[str, tuple[int, datetime]] = field(default_factory=dict)
    # occurrence id -> (revision, when it was skipped or moved last)
    changes: Mapping[str, tuple[int, datetime]] = field(default_factory=dict)
    published: datetime = EPOCH  # for rituals never versioned (an exported file)


def feed_occurrences(
    couple: Couple,
    partner: Partner,
    start: datetime,
    end: datetime,
    changes: Changes = NO_CHANGES,
) -> list[Occurrence]:
    """The partner's calendar occurrences starting in ``[start, end)``, changes applied: the
    couple's calendar rituals, and the partner's own occurrences of partner-local ones."""
    return shown_to(partner, occurrences(couple, start, end, changes, calendar_only=True))


def shown_to(partner: Partner, found: Iterable[Occurrence]) -> list[Occurrence]:
    """Of the couple's calendar occurrences, those in ``partner``'s feed (for a publisher
    that expands once for both partners)."""
    return [o for o in found if o.partner in (None, partner.key)]


@dataclass(frozen=True, slots=True)
class Feed:
    """A partner's published feed: its bytes and how far ahead each ritual shows."""

    body: bytes
    shown: list[Occurrence]
    horizons: Mapping[str, datetime]  # ritual id -> the first start it no longer shows
    kept_floor: bool = True  # False: even 8 weeks ahead was over the limits (see the rule)


def published_feed(
    couple: Couple,
    partner: Partner,
    found: Sequence[Occurrence],
    stamps: FeedStamps = FeedStamps(),
    *,
    now: datetime,
    limits: FeedLimits = FEED_LIMITS,
) -> Feed:
    """The feed a partner's URL serves at ``now``: of ``found`` (their calendar occurrences,
    changes applied), those in ``limits.window(now)`` and before their ritual's horizon."""
    window = limits.window(now)
    candidates = [o for o in found if window[0] <= o.start < window[1]]
    events = [_event(couple, partner, o, stamps) for o in candidates]
    # The VTIMEZONEs of every candidate: an upper bound of what the shown ones need.
    overhead = len(_assemble(couple, partner, [], events, window))
    pairs = list(zip(candidates, events, strict=True))
    sizes = (Candidate(o.ritual, o.start, len(e.ical)) for o, e in pairs)
    chosen = feed_horizons(sizes, now, overhead, limits)
    horizons = chosen.by_ritual
    kept = [(o, e) for o, e in pairs if o.start < horizons[o.ritual]]
    shown = [e for _, e in kept]
    body = _assemble(couple, partner, shown, shown, window)
    return Feed(body, [o for o, _ in kept], horizons, chosen.kept_floor)


def render_feed(
    couple: Couple,
    partner: Partner,
    found: Sequence[Occurrence],
    stamps: FeedStamps = FeedStamps(),
    *,
    window: tuple[datetime, datetime] | None = None,
) -> bytes:
    """The feed of all of ``found`` for ``partner``, whatever its size (an export, a test);
    ``window`` bounds the VTIMEZONEs (default: the occurrences' own span)."""
    events = [_event(couple, partner, occ, stamps) for occ in found]
    if window is None and found:
        window = (min(o.start for o in found), max(o.end for o in found))
    return _assemble(couple, partner, events, events, window)


def _assemble(
    couple: Couple,
    partner: Partner,
    events: Sequence[_Rendered],
    zoned: Sequence[_Rendered],
    window: tuple[datetime, datetime] | None,
) -> bytes:
    """The calendar around ``events``, with a VTIMEZONE for each zone ``zoned`` uses. Events
    are serialised once, on their own: a calendar's bytes are its components' in order."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    other = couple.other(partner)
    cal.add("x-wr-calname", f"Hearth: {partner.name} & {other.name}")
    cal.add("x-wr-caldesc", f"Rituals of {partner.name} and {other.name}, kept by Hearth.")
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(REFRESH))
    zones = sorted({e.tzid for e in zoned if e.tzid is not None})
    if zones and window is not None:
        lo, hi = window
        for name in zones:
            cal.add_component(
                _vtimezone(name, lo.astimezone(UTC).date(), hi.astimezone(UTC).date())
            )
    head = bytes(cal.to_ical())
    end = b"END:VCALENDAR\r\n"
    assert head.endswith(end)
    return b"".join([head[: -len(end)], *(e.ical for e in events), end])


@dataclass(frozen=True, slots=True)
class _Rendered:
    ical: bytes
    tzid: str | None


def _event(couple: Couple, partner: Partner, occ: Occurrence, stamps: FeedStamps) -> _Rendered:
    ritual = couple.ritual(occ.ritual)
    tz = occ.start.tzinfo
    assert isinstance(tz, ZoneInfo)
    values = {
        "partner": partner.name,
        "other": couple.other(partner).name,
        "planner": couple.partner(occ.planner).name if occ.planner else "",
        "lead": "",
        "time": f"{occ.start:%H:%M}",
    }
    summary = render(ritual.text("title"), **values)
    description = render(ritual.text("description"), **values)
    if occ.moved_from is not None:
        was = occ.moved_from.astimezone(tz)
        description += f"\n\nMoved from {was:%a} {was.day} {was:%b}, {was:%H:%M}."
    version, ritual_at = stamps.rituals.get(ritual.id, (0, stamps.published))
    revision, changed_at = stamps.changes.get(occ.id, (0, ritual_at))
    stamp = max(ritual_at, changed_at).astimezone(UTC)
    event = Event()
    event.add("uid", f"{occ.id}@hearth")
    event.add("dtstamp", stamp)
    event.add("last-modified", stamp)
    event.add("sequence", version + revision)
    event.add("summary", summary)
    event.add("description", description)
    one_reading = occ.moved_from is None and _unambiguous(occ, tz)
    if one_reading:
        event.add("dtstart", occ.start)
        event.add("dtend", occ.end)
    else:
        event.add("dtstart", occ.start.astimezone(UTC))
        event.add("dtend", occ.end.astimezone(UTC))
    event.add("status", "CONFIRMED")
    event.add("transp", "OPAQUE")
    for lead in ritual.alarms:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", summary)
        alarm.add("trigger", -lead)
        event.add_component(alarm)
    return _Rendered(bytes(event.to_ical()), tz.key if one_reading else None)


def _unambiguous(occ: Occurrence, tz: ZoneInfo) -> bool:
    """Whether TZID plus local times can be read only one way for this event.

    The nominal wall time counts, not only the resolved start: a rule time in a gap resolves
    to a real moment, but readers differ on which (an hour early or late). A moved
    occurrence has no nominal time left to check; the caller writes it in UTC.
    """
    if not _whole_hour_shifts(tz.key):
        return False
    if occ.start.utcoffset() != occ.end.utcoffset():
        return False  # spans a change
    walls = (occ.wall, _wall(occ.start, tz), _wall(occ.end, tz))
    return not any(_two_readings(w, tz) for w in walls)


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _two_readings(wall: datetime, tz: ZoneInfo) -> bool:
    """In a gap (no reading) or a fold (two): PEP 495's two folds disagree on the offset."""
    first = wall.replace(tzinfo=tz, fold=0).utcoffset()
    return first != wall.replace(tzinfo=tz, fold=1).utcoffset()


@cache
def _whole_hour_shifts(zone: str) -> bool:
    """Whether every offset change of ``zone`` from 1990 to 2100 is a whole number of hours."""
    tz = ZoneInfo(zone)
    return all(
        (after - before) % timedelta(hours=1) == timedelta(0)
        for _, before, after in _transitions(tz, date(1990, 1, 1), date(2100, 1, 1))
    )


def _transitions(
    tz: tzinfo, first: date, last: date
) -> Iterable[tuple[datetime, timedelta, timedelta]]:
    """(UTC instant, offset before, offset after) of every change in ``[first, last]``."""
    at = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    step = timedelta(days=7)  # no zone changes offset twice within a week
    before = _offset(at, tz)
    while at < end:
        nxt = min(at + step, end)
        after = _offset(nxt, tz)
        if after != before:
            lo, hi = at, nxt
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if _offset(mid, tz) == before:
                    lo = mid
                else:
                    hi = mid
            # Transitions happen on whole minutes.
            yield hi.replace(second=0, microsecond=0), before, after
            before = after
        at = nxt


def _offset(instant: datetime, tz: tzinfo) -> timedelta:
    value = instant.astimezone(tz).utcoffset()
    assert value is not None
    return value


@cache
def _vtimezone(zone: str, first: date, last: date) -> Timezone:
    """A VTIMEZONE for ``zone`` valid from ``first`` to ``last``: one component per offset
    in force, each with its own DTSTART, and nothing to expand (no RRULE, no RDATE).

    The first component is the last change before ``first`` (a year back at most), so the
    offset in force when the feed starts is stated, not implied."""
    tz = ZoneInfo(zone)
    changes = list(_transitions(tz, first - timedelta(days=400), last + timedelta(days=1)))
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    earlier = [c for c in changes if c[0] < start]
    periods = earlier[-1:] + [c for c in changes if c[0] >= start]
    if not earlier:
        offset = _offset(start, tz)
        periods.insert(0, (datetime(1970, 1, 1, tzinfo=UTC) - offset, offset, offset))
    vtz = Timezone()
    vtz.add("tzid", zone)
    for instant, before, after in periods:
        # The stand-in first period is named as at the feed's start, not as in 1970.
        local = (start if instant < start and not earlier else instant).astimezone(tz)
        part = TimezoneDaylight() if local.dst() else TimezoneStandard()
        # DTSTART is the local time of the change, read in the offset before it.
        part.add("dtstart", (instant + before).replace(tzinfo=None))
        part.add("tzoffsetfrom", before)
        part.add("tzoffsetto", after)
        part.add("tzname", local.tzname() or _offset_name(after))
        vtz.add_component(part)
    return vtz


def _offset_name(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{rest:02d}"
