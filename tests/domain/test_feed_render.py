"""The calendar feed is the schedule: what calendar apps read from it is ``feed_occurrences``.

Three readers, each independent of ``service/feeds/render.py`` and of each other:

- ``recurring_ical_events`` over ``icalendar`` (TZID resolved against the tz database);
- ``vobject``, which resolves TZID against the VTIMEZONE *in the file* (dateutil's tzical);
- a small reader here that applies RFC 5545 to our VTIMEZONE by hand and also checks that
  every local time written with TZID has exactly one reading.

Each must give back exactly the domain's (occurrence id, start, end) multiset, on two years
of rituals placed on daylight-saving edges in hard zones, with skips and moves applied: the
feed as published (``published_feed``) at two instants a year apart, each ritual up to its
horizon, and a feed whose daily rituals the 1,000-event limit cuts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import pytest
import recurring_ical_events
import vobject
import vobject.icalendar
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.changes import NO_CHANGES, Change, Changes
from service.domain.couples import Couple, Partner
from service.domain.feed_horizons import FEED_LIMITS
from service.domain.occurrences import Occurrence
from service.domain.wallclock import resolve
from service.feeds.render import FeedStamps, feed_occurrences, published_feed, render_feed
from tests.domain.builders import couple, utc


def _exists(name: str) -> bool:
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError:
        return False
    return True


ZONES = tuple(
    name
    for name in (
        "America/New_York",
        "Europe/London",
        "Europe/Berlin",
        "Australia/Sydney",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "America/Sao_Paulo",
        "Pacific/Auckland",
        "Asia/Kolkata",
        "America/St_Johns",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
    )
    if _exists(name)
)

NY = "America/New_York"
START = utc(2026, 1, 1)
END = utc(2028, 3, 31)  # two years and a quarter: 2028-02-29 is inside

# Rituals on the edges: 02:30 lands in spring-forward gaps, 01:30 in fall-back folds (every
# Sunday: these zones change on Sunday mornings), Saturday 23:30 + 3h spans the changes, and
# Feb 29 exists one year in four.
EDGE_RITUALS: tuple[dict[str, Any], ...] = (
    {
        "kind": "custom",
        "id": "gap",
        "schedule": "every day at 02:30",
        "duration": "90m",
        "channels": ["calendar"],
    },
    {
        "kind": "custom",
        "id": "fold",
        "schedule": "every sunday at 01:30",
        "duration": "90m",
        "channels": ["calendar"],
    },
    {"kind": "date_night", "schedule": "every other friday at 19:30", "duration": "3h"},
    {
        "kind": "custom",
        "id": "late",
        "schedule": "every saturday at 23:30",
        "duration": "3h",
        "channels": ["calendar"],
    },
    {
        "kind": "custom",
        "id": "leap",
        "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        "at": "20:00",
        "channels": ["calendar"],
    },
)

Reading = tuple[str, datetime, datetime]  # occurrence id, start (UTC), end (UTC)


# --- a raw reader of content lines (no icalendar involved) --------------------------------


@dataclass
class Prop:
    name: str
    params: dict[str, str]
    value: str


@dataclass
class Component:
    name: str
    props: list[Prop] = field(default_factory=list)
    children: list[Component] = field(default_factory=list)

    def all(self, name: str) -> list[Prop]:
        return [p for p in self.props if p.name == name]

    def one(self, name: str) -> Prop:
        found = self.all(name)
        assert len(found) == 1, f"{self.name} has {len(found)} {name} properties"
        return found[0]

    def value(self, name: str) -> str:
        return self.one(name).value

    def walk(self, name: str) -> list[Component]:
        own = [self] if self.name == name else []
        return own + [c for child in self.children for c in child.walk(name)]


def unfold(data: bytes) -> list[str]:
    """Content lines of ``data`` with RFC 5545 folding undone."""
    text = data.decode("utf-8")
    assert text.endswith("\r\n")
    lines: list[str] = []
    for line in text[:-2].split("\r\n"):
        if line.startswith((" ", "\t")):
            lines[-1] += line[1:]
        else:
            lines.append(line)
    return lines


def parse(data: bytes) -> Component:
    root = Component("ROOT")
    stack = [root]
    for line in unfold(data):
        head, _, value = line.partition(":")
        name, *raw_params = head.split(";")
        params = dict(p.split("=", 1) for p in raw_params)
        if name == "BEGIN":
            child = Component(value)
            stack[-1].children.append(child)
            stack.append(child)
        elif name == "END":
            assert stack[-1].name == value, f"END:{value} closes {stack[-1].name}"
            stack.pop()
        else:
            stack[-1].props.append(Prop(name, params, value))
    assert stack == [root], "unbalanced BEGIN/END"
    (calendar,) = root.children
    assert calendar.name == "VCALENDAR"
    return calendar


def _wall(value: str) -> datetime:
    """``20260308T023000`` as a naive datetime (no zone attached)."""
    m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})", value)
    assert m, f"{value!r} is not a local DATE-TIME"
    return datetime(*(int(g) for g in m.groups()))


def _utc_offset(value: str) -> timedelta:
    m = re.fullmatch(r"([+-])(\d{2})(\d{2})(\d{2})?", value)
    assert m, f"{value!r} is not a UTC offset"
    sign = -1 if m.group(1) == "-" else 1
    return sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3)), seconds=int(m[4] or 0))


@dataclass(frozen=True)
class Onset:
    at: datetime  # UTC instant the component's offset starts
    before: timedelta
    after: timedelta
    name: str
    daylight: bool


def onsets(vtimezone: Component) -> list[Onset]:
    """Our VTIMEZONE read by RFC 5545 §3.6.5 alone: each DTSTART is local, in TZOFFSETFROM."""
    out = []
    for part in vtimezone.children:
        assert part.name in ("STANDARD", "DAYLIGHT")
        assert not part.all("RRULE")
        assert not part.all("RDATE")
        before = _utc_offset(part.value("TZOFFSETFROM"))
        after = _utc_offset(part.value("TZOFFSETTO"))
        at = (_wall(part.value("DTSTART")) - before).replace(tzinfo=UTC)
        out.append(Onset(at, before, after, part.value("TZNAME"), part.name == "DAYLIGHT"))
    return sorted(out, key=lambda o: o.at)


def readings(wall: datetime, zone: Sequence[Onset]) -> list[datetime]:
    """Every UTC instant whose local time under ``zone`` is ``wall`` (RFC 5545 has one rule
    for two readings and none; a feed that means one instant must not need it)."""

    def in_force(instant: datetime) -> timedelta:
        current = zone[0].before
        for onset in zone:
            if onset.at <= instant:
                current = onset.after
        return current

    as_utc = wall.replace(tzinfo=UTC)
    candidates = {o for onset in zone for o in (onset.before, onset.after)}
    return sorted({as_utc - o for o in candidates if in_force(as_utc - o) == o})


def read_by_hand(data: bytes) -> list[Reading]:
    """The third reader; also asserts every TZID time in the feed has exactly one reading."""
    cal = parse(data)
    zones = {vtz.value("TZID"): onsets(vtz) for vtz in cal.walk("VTIMEZONE")}
    out = []
    for event in cal.walk("VEVENT"):
        instants = []
        for name in ("DTSTART", "DTEND"):
            prop = event.one(name)
            if "TZID" in prop.params:
                found = readings(_wall(prop.value), zones[prop.params["TZID"]])
                assert len(found) == 1, (
                    f"{event.value('UID')} {name};TZID={prop.params['TZID']}:{prop.value} has "
                    f"{len(found)} readings under the feed's own VTIMEZONE: {found}"
                )
                instants.append(found[0])
            else:
                assert prop.value.endswith("Z"), f"floating {name}: {prop.value}"
                instants.append(_wall(prop.value[:-1]).replace(tzinfo=UTC))
        out.append((_occurrence_id(event.value("UID")), instants[0], instants[1]))
    return out


# --- the two library readers ----------------------------------------------------------------


def _occurrence_id(uid: str) -> str:
    assert uid.endswith("@hearth"), uid
    return uid.removesuffix("@hearth")


def read_with_recurring_ical_events(data: bytes, start: datetime, end: datetime) -> list[Reading]:
    events = recurring_ical_events.of(icalendar.Calendar.from_ical(data)).between(start, end)
    return [
        (
            _occurrence_id(str(e["UID"])),
            e.decoded("DTSTART").astimezone(UTC),
            e.decoded("DTEND").astimezone(UTC),
        )
        for e in events
    ]


def read_with_vobject(data: bytes) -> list[Reading]:
    """vobject, reading TZID through the VTIMEZONEs in this file (dateutil's tzical).

    vobject keeps TZID -> tzinfo in a process-wide registry, keeps the first VTIMEZONE it
    ever saw for a name, does not register one that matches UTC from 2000 to 2020 (ours for
    Europe/London, which states nothing before 2025) and falls back to pytz for names it has
    not registered. So: empty the registry and register this file's own VTIMEZONEs first."""
    module: Any = vobject.icalendar
    registry: dict[str, Any] = vars(module)["__tzidMap"]
    registry.clear()
    module.registerTzid("UTC", module.utc)
    text = data.decode("utf-8")
    for block in re.findall(r"BEGIN:VTIMEZONE\r\n.*?END:VTIMEZONE\r\n", text, flags=re.DOTALL):
        vtimezone = vobject.readOne(f"BEGIN:VCALENDAR\r\n{block}END:VCALENDAR\r\n").vtimezone
        module.registerTzid(vtimezone.tzid.value, vtimezone.gettzinfo())
    cal = vobject.readOne(text)
    out = []
    for event in cal.contents.get("vevent", []):
        start, end = event.dtstart.value, event.dtend.value
        for value in (start, end):
            assert isinstance(value, datetime)
            # UTC, or read through the VTIMEZONE in the file (dateutil's tzical), never
            # through pytz or zoneinfo.
            assert type(value.tzinfo).__name__ in ("tzutc", "_tzicalvtz"), value.tzinfo
        out.append((_occurrence_id(event.uid.value), start.astimezone(UTC), end.astimezone(UTC)))
    return out


# --- comparing ------------------------------------------------------------------------------


def expected(found: Iterable[Occurrence]) -> list[Reading]:
    return [(o.id, o.start.astimezone(UTC), o.end.astimezone(UTC)) for o in found]


def _fmt(instant: datetime, zone: str) -> str:
    local = instant.astimezone(ZoneInfo(zone))
    return f"{instant:%Y-%m-%d %H:%M}Z ({local:%Y-%m-%d %H:%M %z})"


def disagreements(
    reader: str, domain: Sequence[Reading], read: Sequence[Reading], zone: str
) -> str | None:
    """None when the multisets are equal, else the first 10 differing ids, both sides."""
    want, got = Counter(domain), Counter(read)
    if want == got:
        return None
    missing, extra = want - got, got - want
    ids = sorted({r[0] for r in missing} | {r[0] for r in extra})
    lines = [
        f"{reader} disagrees with feed_occurrences in {zone}: {sum(missing.values())} "
        f"readings missing, {sum(extra.values())} extra, {len(ids)} occurrences"
    ]
    for oid in ids[:10]:
        ours = [f"{_fmt(s, zone)} - {_fmt(e, zone)}" for i, s, e in domain if i == oid]
        theirs = [f"{_fmt(s, zone)} - {_fmt(e, zone)}" for i, s, e in read if i == oid]
        lines.append(f"  {oid}\n    domain: {ours or 'absent'}\n    {reader}: {theirs or 'absent'}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Checked:
    data: bytes
    found: list[Occurrence]
    reads: dict[str, list[Reading]]


def render_and_read(
    c: Couple,
    partner: Partner,
    start: datetime,
    end: datetime,
    changes: Changes = NO_CHANGES,
    *,
    readers: Sequence[str] = ("recurring_ical_events", "vobject", "by hand"),
) -> Checked:
    """Render ``partner``'s feed and assert each reader gets exactly the domain's occurrences."""
    found = feed_occurrences(c, partner, start, end, changes)
    data = render_feed(c, partner, found, window=(start, end))
    return read_all(data, found, (start, end), readers, c.timezone)


def read_all(
    data: bytes,
    found: list[Occurrence],
    window: tuple[datetime, datetime],
    readers: Sequence[str],
    zone: str,
) -> Checked:
    """Read ``data`` with each reader and assert each gets exactly ``found``."""
    domain = expected(found)
    reads = {}
    for reader in readers:
        if reader == "recurring_ical_events":
            reads[reader] = read_with_recurring_ical_events(data, *window)
        elif reader == "vobject":
            reads[reader] = read_with_vobject(data)
        else:
            reads[reader] = read_by_hand(data)
    problems = [
        problem
        for reader, read in reads.items()
        if (problem := disagreements(reader, domain, read, zone)) is not None
    ]
    assert not problems, "\n".join(problems)
    return Checked(data, found, reads)


@dataclass(frozen=True)
class Published:
    checked: Checked
    horizons: dict[str, datetime]
    window: tuple[datetime, datetime]


def publish_and_read(
    c: Couple,
    partner: Partner,
    now: datetime,
    changes: Changes = NO_CHANGES,
    *,
    readers: Sequence[str] = ("recurring_ical_events", "vobject", "by hand"),
) -> Published:
    """The feed ``partner``'s URL serves at ``now``; assert each reader gets exactly the
    domain's occurrences in the window, each ritual's up to its horizon, and that the feed
    is within the limits."""
    window = FEED_LIMITS.window(now)
    every = feed_occurrences(c, partner, *window, changes)
    feed = published_feed(c, partner, every, now=now)
    horizons = dict(feed.horizons)
    found = [o for o in every if o.start < horizons[o.ritual]]
    assert len(found) <= FEED_LIMITS.events
    assert len(feed.body) <= FEED_LIMITS.size
    for ritual, horizon in horizons.items():
        assert now + FEED_LIMITS.floor <= horizon <= window[1], ritual
    checked = read_all(feed.body, found, window, readers, c.timezone)
    return Published(checked, horizons, window)


# --- daylight-saving changes, found here by sampling (not by render.py's search) -----------


@dataclass(frozen=True)
class Transition:
    at: datetime  # UTC
    before: timedelta
    after: timedelta

    def local_span(self) -> tuple[datetime, datetime]:
        """Wall times that do not exist (spring) or exist twice (fall), as [lo, hi)."""
        a, b = sorted((self.before, self.after))
        return (self.at + a).replace(tzinfo=None), (self.at + b).replace(tzinfo=None)


def transitions(zone: str, start: datetime, end: datetime) -> list[Transition]:
    tz = ZoneInfo(zone)

    def offset(t: datetime) -> timedelta:
        value = t.astimezone(tz).utcoffset()
        assert value is not None
        return value

    out = []
    hour = timedelta(hours=1)
    t = start.replace(minute=0, second=0, microsecond=0)
    before = offset(t)
    while t < end:
        after = offset(t + hour)
        if after != before:
            lo, hi = 0, 60  # minutes past t: offset(lo) == before, offset(hi) == after
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(t + timedelta(minutes=mid)) == before else (lo, mid)
            out.append(Transition(t + timedelta(minutes=hi), before, after))
            before = after
        t += hour
    return out


def _middle(lo: datetime, hi: datetime) -> datetime:
    return lo + ((hi - lo) / 2 // timedelta(minutes=1)) * timedelta(minutes=1)


# --- 1. the proof ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    changes: dict[str, Change]
    skipped: frozenset[str]
    moved: dict[str, datetime]  # id -> new start (UTC), inside the window
    moved_out: frozenset[str]  # moved past the window's end


def edge_changes(zone: str, base: Sequence[Occurrence]) -> Plan:
    """Skips, and moves into a gap, into the second reading of a fold, across a change, onto
    a change, and out of the window."""
    tz = ZoneInfo(zone)
    by = {r: [o for o in base if o.ritual == r] for r in ("gap", "fold", "date_night", "late")}
    changes = transitions(zone, START, END)
    springs = [t for t in changes if t.after > t.before]
    falls = [t for t in changes if t.after < t.before]
    skipped = {by["gap"][5].id, by["fold"][20].id, by["date_night"][3].id, by["late"][7].id}
    moved: dict[str, datetime] = {}
    if springs:  # into the gap: a wall time that does not exist, resolved by the domain's rule
        moved[by["gap"][20].id] = resolve(_middle(*springs[0].local_span()), tz)
    else:
        moved[by["gap"][20].id] = resolve(datetime(2026, 6, 14, 2, 30), tz)
    if falls:  # the second of the two readings of a repeated wall time
        wall = _middle(*falls[0].local_span())
        moved[by["late"][10].id] = (wall - falls[0].after).replace(tzinfo=UTC)
    else:
        moved[by["late"][10].id] = by["late"][10].start + timedelta(hours=1)
    if changes:  # from before a change to three days after it
        first = changes[0]
        before = [o for o in by["date_night"] if o.start < first.at - timedelta(days=1)]
        moved[before[-1].id] = first.at + timedelta(days=3, hours=1)
        # a 90-minute event that starts half an hour before the last change in the window
        moved[by["fold"][60].id] = changes[-1].at - timedelta(minutes=30)
    else:
        moved[by["date_night"][10].id] = by["date_night"][10].start + timedelta(days=3)
        moved[by["fold"][60].id] = by["fold"][60].start - timedelta(minutes=30)
    moved_out = by["fold"][90].id
    assert not skipped & set(moved)
    plan = {oid: Change(oid, skipped=True) for oid in skipped}
    plan |= {oid: Change(oid, moved_to=at) for oid, at in moved.items()}
    plan[moved_out] = Change(moved_out, moved_to=END + timedelta(days=1))
    return Plan(plan, frozenset(skipped), moved, frozenset({moved_out}))


# Two published feeds a year apart: together two years, from START to past Feb 29, 2028.
NOWS = (START + FEED_LIMITS.past, START + FEED_LIMITS.past + timedelta(days=365))


@pytest.mark.parametrize("zone", ZONES)
def test_readers_read_exactly_the_schedule_on_daylight_saving_edges(zone: str) -> None:
    c = couple(*EDGE_RITUALS, timezone=zone)
    alex = c.partners[0]
    base = feed_occurrences(c, alex, START, END)
    plan = edge_changes(zone, base)

    published = [publish_and_read(c, alex, now, plan.changes) for now in NOWS]

    assert published[-1].window[1] < END + timedelta(days=1), "the moved-out one stays out"
    leaps = 0
    for p in published:
        # These rituals fit whole: every horizon is the full 400 days.
        assert set(p.horizons.values()) == {p.window[1]}
        in_window = [o for o in base if p.window[0] <= o.start < p.window[1]]
        moved_in = sum(1 for at in plan.moved.values() if p.window[0] <= at < p.window[1])
        moved_away = sum(1 for o in in_window if o.id in plan.moved or o.id in plan.moved_out)
        skipped = sum(1 for o in in_window if o.id in plan.skipped)
        assert len(p.checked.found) == len(in_window) - skipped - moved_away + moved_in
        for reader, read in p.checked.reads.items():
            ids = Counter(r[0] for r in read)
            assert not (set(ids) & (plan.skipped | plan.moved_out)), f"{reader} shows a removed one"
            for oid, at in plan.moved.items():
                at_new = [s for i, s, _ in read if i == oid]
                shown = p.window[0] <= at < p.window[1]
                assert at_new == ([at] if shown else []), f"{reader}: moved {oid} at {at_new}"
            assert not [i for i in ids if "/leap/" in i and "0229" not in i]
            assert len(read) == len(p.checked.found)
        leaps += sum(1 for r in p.checked.reads["by hand"] if r[0] == "alex-sam/leap/20280229T2000")
    assert leaps == 1, "Feb 29 is read once"


# Four daily calendar rituals (a phone-free dinner, a phone-free half hour before bed, a
# daily walk, a morning coffee) and weekly ones: one VEVENT per occurrence for 400 days
# would be ~1,900 events, past what Google keeps.
FOUR_DAILY: tuple[dict[str, Any], ...] = (
    {"kind": "phone_free", "id": "dinner", "schedule": "every day at 19:00", "duration": "1h"},
    {"kind": "phone_free", "id": "bedtime", "schedule": "every day at 22:30", "duration": "30m"},
    {"kind": "custom", "id": "walk", "schedule": "every day at 07:30", "channels": ["calendar"]},
    # 02:30: in the spring-forward gap and, in some zones, the fall-back fold.
    {"kind": "custom", "id": "night", "schedule": "every day at 02:30", "duration": "90m",
     "channels": ["calendar"], "alarms": ["30m"]},
    {"kind": "date_night", "schedule": "every friday at 19:30", "duration": "3h"},
    {"kind": "conversation", "schedule": "every sunday at 01:30", "duration": "90m"},
    {"kind": "custom", "id": "late", "schedule": "every saturday at 23:30", "duration": "3h",
     "channels": ["calendar"]},
)  # fmt: skip


def test_four_daily_rituals_fit_the_limits_and_the_feed_is_still_the_schedule() -> None:
    zone = NY
    c = couple(*FOUR_DAILY, timezone=zone)
    alex = c.partners[0]
    now = utc(2026, 2, 20, 15)  # spring forward and fall back both ahead
    p = publish_and_read(c, alex, now)

    events, size = len(p.checked.found), len(p.checked.data)
    print(f"four daily rituals in {zone}: {events} events, {size:,} bytes")
    assert 950 <= events <= FEED_LIMITS.events
    assert size <= FEED_LIMITS.size
    daily = {"dinner", "bedtime", "walk", "night"}
    for ritual, horizon in p.horizons.items():
        if ritual in daily:
            assert now + FEED_LIMITS.floor <= horizon < p.window[1], ritual
        else:
            assert horizon == p.window[1], f"{ritual} keeps the whole 400 days"
    days = {(p.horizons[r] - now).days for r in daily}
    assert max(days) - min(days) <= 1, "the daily rituals are cut alike"
    # The weekly ones show a whole year of daylight-saving changes.
    fall = [o for o in p.checked.found if o.ritual == "conversation" and o.start.month == 11]
    assert fall


@pytest.mark.parametrize("zone", ZONES)
def test_vtimezone_states_every_change_in_the_window_and_names_each_offset(zone: str) -> None:
    c = couple(
        {"kind": "phone_free"},
        {"kind": "custom", "schedule": "every day at 12:00", "channels": ["calendar"]},
        timezone=zone,
    )
    alex = c.partners[0]
    # A week of events; the window alone decides which changes the VTIMEZONE states.
    week = feed_occurrences(c, alex, START, START + timedelta(days=7))
    data = render_feed(c, alex, week, window=(START, END))
    vtimezones = parse(data).walk("VTIMEZONE")
    if zone == "Australia/Lord_Howe":
        assert vtimezones == []  # every event there is written in UTC
        return
    (vtz,) = vtimezones
    assert vtz.value("TZID") == zone
    stated = onsets(vtz)
    in_window = [(o.at, o.before, o.after) for o in stated if START <= o.at < END]
    assert in_window == [(t.at, t.before, t.after) for t in transitions(zone, START, END)]
    assert stated[0].at <= START, "the offset in force when the feed starts is stated"
    tz = ZoneInfo(zone)
    for onset in stated:
        # The tz database's name and kind for the period this component starts (from the
        # feed's start on, for a component that starts before it).
        at = max(onset.at, START)
        local = at.astimezone(tz)
        assert local.utcoffset() == onset.after
        assert (onset.name, onset.daylight) == (local.tzname(), bool(local.dst())), (
            f"{zone}: the component starting {onset.at:%Y-%m-%d %H:%M}Z with TZOFFSETTO "
            f"{onset.after} is named {onset.name!r} (daylight={onset.daylight}); from "
            f"{at:%Y-%m-%d} the tz database calls that offset {local.tzname()!r}"
        )


# --- 2. RFC 5545 shape ----------------------------------------------------------------------

SHAPE_RITUALS: tuple[dict[str, Any], ...] = (
    *EDGE_RITUALS,
    {"kind": "phone_free", "alarms": ["30m"]},
    {"kind": "conversation"},
    {
        "kind": "custom",
        "id": "berlin",
        "timezone": "Europe/Berlin",
        "schedule": "every day at 02:30",
        "channels": ["calendar"],
    },
    {
        "kind": "custom",
        "id": "lord-howe",
        "timezone": "Australia/Lord_Howe",
        "schedule": "every day at 02:15",
        "channels": ["calendar"],
    },
    {
        "kind": "custom",
        "id": "walk",
        "who": "each",
        "partner_local": True,
        "schedule": "every day at 07:30",
        "channels": ["calendar"],
    },
    {
        "kind": "custom",
        "id": "letters",
        "schedule": "every sunday at 10:00",
        "channels": ["calendar"],
        "texts": {
            "title": "Lettres d'amour à {other} — «très» long, with ünïcödé: " + "é" * 80,
            "description": "Écrivez à {other}; ça compte. " * 20,
        },
    },
)

PARTNERS = [
    {"name": "Alex", "phone": "+15550000001"},
    {"name": "Sam", "phone": "+15550000002", "timezone": "Europe/London"},
]


@pytest.fixture(scope="module")
def shape_feeds() -> dict[str, bytes]:
    c = couple(*SHAPE_RITUALS, timezone=NY, partners=PARTNERS)
    start, end = utc(2026, 1, 1), utc(2026, 5, 1)
    return {p.key: render_and_read(c, p, start, end).data for p in c.partners}


@pytest.mark.parametrize("who", ["alex", "sam"])
def test_feed_has_the_rfc5545_shape(shape_feeds: dict[str, bytes], who: str) -> None:
    data = shape_feeds[who]
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b""), "a bare LF"
    assert b"\r" not in data.replace(b"\r\n", b""), "a bare CR"
    raw = data.split(b"\r\n")[:-1]
    too_long = [line for line in raw if len(line) > 75]
    assert not too_long, f"{len(too_long)} lines over 75 octets, e.g. {too_long[0]!r}"
    assert any(line.startswith(b" ") for line in raw), "the long texts were folded"
    for line in raw:
        line.decode("utf-8")  # folding never splits a multi-byte character

    cal = parse(data)
    assert cal.value("VERSION") == "2.0"
    assert cal.value("METHOD") == "PUBLISH"
    assert cal.value("PRODID")
    name = {"alex": "Hearth: Alex & Sam", "sam": "Hearth: Sam & Alex"}[who]
    assert cal.value("X-WR-CALNAME") == name
    assert cal.one("REFRESH-INTERVAL").params == {"VALUE": "DURATION"}
    assert cal.value("REFRESH-INTERVAL") == "PT1H"
    assert cal.value("X-PUBLISHED-TTL") == "PT1H"

    lines = unfold(data)
    for forbidden in ("RRULE", "RDATE", "EXDATE", "EXRULE", "RECURRENCE-ID"):
        assert not [ln for ln in lines if re.match(rf"{forbidden}[;:]", ln)], forbidden

    events = cal.walk("VEVENT")
    uids = [e.value("UID") for e in events]
    assert len(uids) == len(set(uids)) > 500
    used = Counter(
        p.params["TZID"]
        for e in events
        for p in (e.one("DTSTART"), e.one("DTEND"))
        if "TZID" in p.params
    )
    defined = Counter(vtz.value("TZID") for vtz in cal.walk("VTIMEZONE"))
    assert set(used) == set(defined)
    assert all(n == 1 for n in defined.values()), defined
    own_zone = {"alex": NY, "sam": "Europe/London"}[who]
    assert set(defined) == {NY, "Europe/Berlin", own_zone}  # Lord Howe is all UTC
    for e in events:
        for name in ("DTSTART", "DTEND", "DTSTAMP", "LAST-MODIFIED"):
            prop = e.one(name)
            assert "TZID" in prop.params or prop.value.endswith("Z"), (name, prop)
            assert "VALUE" not in prop.params  # date-times, never all-day dates
        assert re.fullmatch(r"\d+", e.value("SEQUENCE"))
    walks = [e.value("UID") for e in events if "/walk/" in e.value("UID")]
    assert walks
    assert all(uid.endswith(f"/{who}@hearth") for uid in walks), "only this partner's own"


# --- 3. one reading at DST edges ------------------------------------------------------------


def _events(data: bytes) -> dict[str, Component]:
    return {_occurrence_id(e.value("UID")): e for e in parse(data).walk("VEVENT")}


def _line(event: Component, name: str) -> str:
    prop = event.one(name)
    params = "".join(f";{k}={v}" for k, v in prop.params.items())
    return f"{name}{params}:{prop.value}"


@pytest.fixture(scope="module")
def ny_edges() -> dict[str, Component]:
    c = couple(*EDGE_RITUALS, {"kind": "phone_free"}, timezone=NY)
    alex = c.partners[0]
    start, end = utc(2026, 3, 1), utc(2026, 12, 1)
    return _events(render_and_read(c, alex, start, end).data)


def test_fall_back_fold_is_written_in_utc(ny_edges: dict[str, Component]) -> None:
    event = ny_edges["alex-sam/fold/20261101T0130"]  # 01:30 happens twice; the first is meant
    assert _line(event, "DTSTART") == "DTSTART:20261101T053000Z"
    assert _line(event, "DTEND") == "DTEND:20261101T070000Z"  # 02:00 EST, 1.5 h later


def test_events_spanning_a_change_are_written_in_utc(ny_edges: dict[str, Component]) -> None:
    spring = ny_edges["alex-sam/late/20260307T2330"]  # 23:30 EST + 3h = 03:30 EDT
    assert _line(spring, "DTSTART") == "DTSTART:20260308T043000Z"
    assert _line(spring, "DTEND") == "DTEND:20260308T073000Z"
    fall = ny_edges["alex-sam/late/20261031T2330"]  # 23:30 EDT + 3h = 01:30 EST
    assert _line(fall, "DTSTART") == "DTSTART:20261101T033000Z"
    assert _line(fall, "DTEND") == "DTEND:20261101T063000Z"
    spring_fold = ny_edges["alex-sam/fold/20260308T0130"]  # 01:30 EST + 90m = 04:00 EDT
    assert _line(spring_fold, "DTSTART") == "DTSTART:20260308T063000Z"
    assert _line(spring_fold, "DTEND") == "DTEND:20260308T080000Z"


def test_spring_forward_gap_time_is_written_in_utc(ny_edges: dict[str, Component]) -> None:
    """render.py's rule (its module docstring): an occurrence whose local start falls in a
    spring-forward gap is written in UTC. 02:30 on 2026-03-08 does not exist in New York; the
    occurrence named for it happens at 07:30Z (03:30 EDT)."""
    event = ny_edges["alex-sam/gap/20260308T0230"]
    assert _line(event, "DTSTART") == "DTSTART:20260308T073000Z"
    assert _line(event, "DTEND") == "DTEND:20260308T090000Z"


def test_ordinary_days_carry_the_couples_zone(ny_edges: dict[str, Component]) -> None:
    summer = ny_edges["alex-sam/phone_free/20260615T1900"]
    assert _line(summer, "DTSTART") == "DTSTART;TZID=America/New_York:20260615T190000"
    assert _line(summer, "DTEND") == "DTEND;TZID=America/New_York:20260615T200000"
    # On the change days themselves, times away from the change keep their zone too.
    after_fall = ny_edges["alex-sam/gap/20261101T0230"]  # 02:30 EST exists once
    assert _line(after_fall, "DTSTART") == "DTSTART;TZID=America/New_York:20261101T023000"
    evening = ny_edges["alex-sam/phone_free/20260308T1900"]
    assert _line(evening, "DTSTART") == "DTSTART;TZID=America/New_York:20260308T190000"
    date_night = ny_edges["alex-sam/date_night/20260313T1930"]
    assert _line(date_night, "DTSTART") == "DTSTART;TZID=America/New_York:20260313T193000"


def test_lord_howe_is_all_utc_and_needs_no_vtimezone() -> None:
    c = couple(*EDGE_RITUALS, {"kind": "phone_free"}, timezone="Australia/Lord_Howe")
    alex = c.partners[0]
    data = render_and_read(c, alex, utc(2026, 1, 1), utc(2027, 1, 1)).data
    cal = parse(data)
    assert cal.walk("VTIMEZONE") == []
    assert b"TZID" not in data
    events = cal.walk("VEVENT")
    assert len(events) > 700
    for e in events:
        assert e.value("DTSTART").endswith("Z")
        assert e.value("DTEND").endswith("Z")
    # An ordinary winter evening there, 19:00 +10:30, is written as its UTC instant.
    ordinary = _events(data)["alex-sam/phone_free/20260615T1900"]
    assert _line(ordinary, "DTSTART") == "DTSTART:20260615T083000Z"


# --- 4. stable bytes ------------------------------------------------------------------------


STAMP_RITUALS: tuple[dict[str, Any], ...] = (
    {
        "kind": "custom",
        "id": "gap",
        "schedule": "every day at 02:30",
        "duration": "90m",
        "channels": ["calendar"],
    },
    {"kind": "phone_free"},
)


def _stamps_of(data: bytes) -> dict[str, tuple[str, str, str]]:
    return {
        oid: (e.value("SEQUENCE"), e.value("DTSTAMP"), e.value("LAST-MODIFIED"))
        for oid, e in _events(data).items()
    }


def _stamp_feed(
    stamps: FeedStamps | None = None, changes: Changes = NO_CHANGES
) -> tuple[bytes, list[Occurrence]]:
    c = couple(*STAMP_RITUALS, timezone=NY)
    alex = c.partners[0]
    start, end = utc(2026, 3, 1), utc(2026, 4, 1)
    found = feed_occurrences(c, alex, start, end, changes)
    return render_feed(c, alex, found, stamps or FeedStamps(), window=(start, end)), found


def test_same_inputs_give_the_same_bytes() -> None:
    first, _ = _stamp_feed()
    again, _ = _stamp_feed()  # a new couple object, a new render
    assert first == again
    assert set(_stamps_of(first).values()) == {("0", "20000101T000000Z", "20000101T000000Z")}
    published = datetime(2026, 2, 1, 9, 15, tzinfo=ZoneInfo("Europe/Berlin"))
    stamped, _ = _stamp_feed(FeedStamps(published=published))
    assert set(_stamps_of(stamped).values()) == {("0", "20260201T081500Z", "20260201T081500Z")}
    assert stamped == _stamp_feed(FeedStamps(published=published))[0]


def test_ritual_version_raises_sequence_and_restamps_only_its_events() -> None:
    base, _ = _stamp_feed()
    edited_at = datetime(2026, 2, 20, 18, 5, tzinfo=ZoneInfo(NY))  # 23:05Z
    data, _ = _stamp_feed(FeedStamps(rituals={"gap": (3, edited_at)}))
    before, after = _events(base), _events(data)
    assert before.keys() == after.keys()
    for oid, event in after.items():
        if "/gap/" in oid:
            assert _stamps_of(data)[oid] == ("3", "20260220T230500Z", "20260220T230500Z")
        else:
            assert event == before[oid]  # phone-free time is untouched, byte for byte
    assert data == _stamp_feed(FeedStamps(rituals={"gap": (3, edited_at)}))[0]


def test_change_revision_adds_to_sequence_for_that_occurrence_only() -> None:
    edited_at = utc(2026, 2, 20, 23, 5)
    moved_at = utc(2026, 3, 2, 12, 0)
    oid = "alex-sam/gap/20260310T0230"
    other = "alex-sam/gap/20260311T0230"
    stamps = FeedStamps(rituals={"gap": (3, edited_at)}, changes={oid: (2, moved_at)})
    moved_to = utc(2026, 3, 10, 22, 0)
    changes = {oid: Change(oid, moved_to=moved_to)}
    data, found = _stamp_feed(stamps, changes)
    seen = _stamps_of(data)
    assert seen[oid] == ("5", "20260302T120000Z", "20260302T120000Z")
    assert seen[other] == ("3", "20260220T230500Z", "20260220T230500Z")
    assert _events(data)[oid].value("DTSTART") == "20260310T220000Z"  # moved: written in UTC
    assert [o.start for o in found if o.id == oid] == [moved_to]
    # A change stamped before the ritual's last edit: DTSTAMP is the later of the two.
    older = FeedStamps(rituals={"gap": (3, edited_at)}, changes={oid: (1, utc(2026, 1, 5))})
    assert _stamps_of(_stamp_feed(older, changes)[0])[oid] == (
        "4",
        "20260220T230500Z",
        "20260220T230500Z",
    )
    # A change to a never-versioned ritual: the revision alone, stamped when it changed.
    alone = FeedStamps(changes={oid: (1, moved_at)})
    assert _stamps_of(_stamp_feed(alone, changes)[0])[oid] == (
        "1",
        "20260302T120000Z",
        "20260302T120000Z",
    )


# --- 5. texts and alarms --------------------------------------------------------------------


def _ical_events(data: bytes) -> dict[str, icalendar.Event]:
    cal = icalendar.Calendar.from_ical(data)
    return {_occurrence_id(str(e["UID"])): e for e in cal.walk("VEVENT")}


def test_date_night_summary_names_this_occurrences_planner() -> None:
    c = couple({"kind": "date_night"}, timezone=NY)
    alex, sam = c.partners
    start, end = utc(2026, 1, 1), utc(2026, 7, 1)
    found = feed_occurrences(c, alex, start, end)
    events = _ical_events(render_feed(c, alex, found))
    summaries = [str(events[o.id]["SUMMARY"]) for o in found]
    assert summaries[:4] == [
        "Date night (Alex plans)",
        "Date night (Sam plans)",
        "Date night (Alex plans)",
        "Date night (Sam plans)",
    ]
    assert len(summaries) == 13
    for o, summary in zip(found, summaries, strict=True):
        planner = c.partner(o.planner or "").name
        assert summary == f"Date night ({planner} plans)"
        assert f"{planner} plans this one." in str(events[o.id]["DESCRIPTION"])
    # The planner is the occurrence's, not the reader's: Sam's feed says the same.
    sams = _ical_events(render_feed(c, sam, feed_occurrences(c, sam, start, end)))
    assert [str(sams[o.id]["SUMMARY"]) for o in found] == summaries


def test_texts_are_from_the_partners_point_of_view() -> None:
    c = couple(EDGE_RITUALS[0], timezone=NY)
    alex, sam = c.partners
    start, end = utc(2026, 5, 1), utc(2026, 5, 3)
    for me, other in ((alex, "Sam"), (sam, "Alex")):
        events = _ical_events(render_feed(c, me, feed_occurrences(c, me, start, end)))
        assert {str(e["SUMMARY"]) for e in events.values()} == {f"Ritual with {other}"}
        assert {str(e["DESCRIPTION"]) for e in events.values()} == {
            f"A ritual you and {other} chose together."
        }


def test_moved_occurrence_says_where_it_was_moved_from() -> None:
    c = couple({"kind": "date_night"}, timezone=NY)
    alex = c.partners[0]
    oid = "alex-sam/date_night/20260313T1930"  # Friday 13 March, 19:30 EDT (planner Sam)
    changes = {oid: Change(oid, moved_to=datetime(2026, 3, 14, 18, 0, tzinfo=ZoneInfo(NY)))}
    start, end = utc(2026, 3, 1), utc(2026, 4, 1)
    checked = render_and_read(c, alex, start, end, changes)
    events = _ical_events(checked.data)
    moved = events[oid]
    assert str(moved["DESCRIPTION"]).endswith("\n\nMoved from Fri 13 Mar, 19:30.")
    assert str(moved["SUMMARY"]) == "Date night (Sam plans)"  # a move keeps the turn
    assert moved.decoded("DTSTART") == datetime(2026, 3, 14, 18, 0, tzinfo=ZoneInfo(NY))
    assert moved.decoded("DTEND") - moved.decoded("DTSTART") == timedelta(hours=3)
    others = [e for i, e in events.items() if i != oid]
    assert others
    assert not [e for e in others if "Moved from" in str(e["DESCRIPTION"])]


def test_alarms_become_display_valarms() -> None:
    c = couple(
        {"kind": "phone_free", "alarms": ["30m"]},
        {
            "kind": "custom",
            "schedule": "every day at 08:00",
            "channels": ["calendar"],
            "alarms": ["30m", "1d"],
        },
        {"kind": "conversation"},
        timezone=NY,
    )
    alex = c.partners[0]
    data = render_feed(c, alex, feed_occurrences(c, alex, utc(2026, 3, 1), utc(2026, 3, 8)))
    events = _events(data)
    seen = 0
    for oid, event in events.items():
        alarms = [child for child in event.children if child.name == "VALARM"]
        triggers = [a.value("TRIGGER") for a in alarms]
        if "/phone_free/" in oid:
            assert triggers == ["-PT30M"]
        elif "/custom/" in oid:
            assert triggers == ["-PT30M", "-P1D"]
        else:
            assert triggers == []
        for alarm in alarms:
            seen += 1
            assert alarm.value("ACTION") == "DISPLAY"
            assert alarm.value("DESCRIPTION") == event.value("SUMMARY")
    assert seen == 7 + 2 * 7
    assert any("/conversation/" in oid for oid in events)


# --- 6. property: any daily time, any duration, any zone -----------------------------------


@settings(max_examples=50, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    hour=st.one_of(st.integers(0, 4), st.integers(0, 23)),
    minute=st.one_of(st.sampled_from([0, 1, 15, 29, 30, 44, 45, 59]), st.integers(0, 59)),
    minutes=st.one_of(st.sampled_from([5, 30, 60, 90, 120, 300]), st.integers(5, 300)),
    first=st.integers(0, 364),
)
def test_any_daily_ritual_reads_back_exactly(
    zone: str, hour: int, minute: int, minutes: int, first: int
) -> None:
    c = couple(
        {
            "kind": "custom",
            "schedule": f"every day at {hour:02d}:{minute:02d}",
            "duration": f"{minutes}m",
            "channels": ["calendar"],
        },
        timezone=zone,
    )
    start = utc(2026, 1, 1) + timedelta(days=first)
    end = start + timedelta(days=365)
    # vobject's reading of our VTIMEZONE is in the proof above; here the hand reader checks
    # it (and that every TZID time has one reading), to keep the property quick.
    readers = ("recurring_ical_events", "by hand")
    checked = render_and_read(c, c.partners[0], start, end, readers=readers)
    assert 364 <= len(checked.found) <= 366
