"""What a partner's dashboard shows, as one typed value: ``build_dashboard`` makes it.

``build_dashboard`` is pure: it takes the couple, the viewer, the instant and a ``History``
read from storage (``history.py``) and returns a ``DashboardView`` that ``page.py`` renders.
Times in the view are in the viewer's own zone (their partner zone).

Each cell's state is decided here (``_cells``: the prompt log says which prompts a pause
held, which the domain's pause spans cannot yet); the streak and the Loop-style strength
score with its sentence come from ``service/domain/progress.py`` (``_progress``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from service.domain import progress
from service.domain.completions import is_complete
from service.domain.kinds import Completion, Who
from service.domain.occurrences import occurrences, parse_occurrence_id
from service.domain.progress import State as CellState
from service.domain.wallclock import resolve

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from zoneinfo import ZoneInfo

    from service.domain.changes import Change
    from service.domain.couples import Couple, Partner, Ritual
    from service.domain.occurrences import Occurrence
    from service.feeds.publisher import FeedUrl
    from service.storage import JournalEntry, OccurrenceAnswers

__all__ = [
    "WEEKS",
    "Cell",
    "CellState",
    "DashboardView",
    "History",
    "JournalLine",
    "NextOccurrence",
    "Progress",
    "RevealedAnswer",
    "RitualProgress",
    "Subscribe",
    "build_dashboard",
    "heatmap_window",
]

WEEKS = 12
NEXT_SHOWN = 6
NEXT_HORIZON = timedelta(days=35)
# A past occurrence not yet done can still be answered for this long after it ends (a late
# DONE is still welcome); until then it is shown as upcoming ("open"), not missed.
STILL_OPEN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Cell:
    """One scheduled occurrence in the heatmap."""

    occurrence_id: str
    start: datetime  # in the viewer's zone
    state: CellState
    label: str  # "Fri 20 Nov 19:30: done", the cell's <title>


@dataclass(frozen=True, slots=True)
class Progress:
    streak: int
    streak_text: str  # "5 weeks in a row.", or "" below 2
    score: int  # 0-100
    sentence: str  # "Strong: kept 11 of the last 12."


@dataclass(frozen=True, slots=True)
class RitualProgress:
    ritual: str  # the ritual's id
    name: str
    cells: tuple[Cell, ...]  # oldest first
    progress: Progress


@dataclass(frozen=True, slots=True)
class NextOccurrence:
    ritual: str  # the ritual's name
    start: datetime  # in the viewer's zone
    your_turn: bool  # an alternating ritual that the viewer plans this time
    moved: bool


@dataclass(frozen=True, slots=True)
class JournalLine:
    ritual: str  # the ritual's name (its id when the ritual is gone from the file)
    at: datetime  # when it was answered, in the viewer's zone
    note: str


@dataclass(frozen=True, slots=True)
class RevealedAnswer:
    """An answer of the other partner revealed to the viewer (both answered, then both see)."""

    ritual: str
    at: datetime
    partner: str  # the other partner's name
    note: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    """The viewer's calendar feed: http(s), webcal, and Google Calendar's add-by-URL."""

    url: str
    webcal: str
    google: str


@dataclass(frozen=True, slots=True)
class DashboardView:
    couple: str
    viewer: str  # the viewer's name
    other: str  # their partner's name
    zone: str
    now: datetime  # in the viewer's zone
    first_week: date  # the Monday the heatmaps start on
    rituals: tuple[RitualProgress, ...]
    upcoming: tuple[NextOccurrence, ...]
    journal: tuple[JournalLine, ...]  # the viewer's own entries, newest first
    # The other partner's answers texted to the viewer once both answered (newest first);
    # ``reveal_enabled`` when any of the couple's rituals reveals answers.
    revealed: tuple[RevealedAnswer, ...] = ()
    reveal_enabled: bool = False
    subscribe: Subscribe | None = None
    paused_until: datetime | None = None  # the viewer's pause, in their zone


@dataclass(frozen=True, slots=True)
class History:
    """What storage knows about the couple that the dashboard shows."""

    answers: Mapping[str, OccurrenceAnswers]  # by occurrence id, for the heatmap window
    changes: Mapping[str, Change]  # skipped and moved occurrences, by id
    paused: Mapping[str, frozenset[str]]  # occurrence id -> partners a pause held its prompt
    paused_until: Mapping[str, datetime | None]  # partner key -> their pause now
    journal: Sequence[JournalEntry] = field(default_factory=tuple)  # the viewer's
    revealed: Sequence[JournalEntry] = field(default_factory=tuple)  # the other's, texted


def heatmap_window(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``[Monday 00:00 eleven weeks before this week's, next Monday 00:00)`` in ``tz``: the
    heatmap's twelve whole local weeks, this one included."""
    today = now.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    first = monday - timedelta(weeks=WEEKS - 1)
    return (
        resolve(datetime.combine(first, time()), tz),
        resolve(datetime.combine(monday + timedelta(weeks=1), time()), tz),
    )


def build_dashboard(
    couple: Couple,
    viewer: Partner,
    now: datetime,
    history: History,
    feed: FeedUrl | None = None,
) -> DashboardView:
    """The viewer's dashboard at ``now`` (aware) from ``history``."""
    tz = couple.partner_zone(viewer)
    start, end = heatmap_window(now, tz)
    every = [o for o in occurrences(couple, start, end) if o.partner in (None, viewer.key)]
    rituals = []
    for ritual in couple.rituals:
        if not ritual.enabled:
            continue
        mine = [o for o in every if o.ritual == ritual.id]
        cells = _cells(couple, ritual, viewer, mine, now, history, tz)
        rituals.append(
            RitualProgress(ritual.id, ritual.name, cells, _progress(ritual, cells, tz, now))
        )
    until = history.paused_until.get(viewer.key)
    return DashboardView(
        couple=couple.id,
        viewer=viewer.name,
        other=couple.other(viewer).name,
        zone=str(tz.key),
        now=now.astimezone(tz),
        first_week=start.astimezone(tz).date(),
        rituals=tuple(rituals),
        upcoming=_next(couple, viewer, now, history.changes, tz),
        journal=_journal(couple, history.journal, tz),
        revealed=tuple(
            RevealedAnswer(line.ritual, line.at, couple.other(viewer).name, line.note)
            for line in _journal(couple, history.revealed, tz)
        ),
        reveal_enabled=any(r.reveal and r.enabled for r in couple.rituals),
        subscribe=_subscribe(couple, feed),
        paused_until=until.astimezone(tz) if until is not None and until > now else None,
    )


def _cells(
    couple: Couple,
    ritual: Ritual,
    viewer: Partner,
    found: Sequence[Occurrence],
    now: datetime,
    history: History,
    tz: ZoneInfo,
) -> tuple[Cell, ...]:
    """Each scheduled occurrence's state for the viewer (to be replaced by progress.py).

    Done, by the ritual's completion rule; skipped, by a SKIP (the viewer's own, for rituals
    counted per partner); paused, when a pause held its prompt (the prompt log's record) or,
    for one still ahead, when a pause now in force will; upcoming, before it starts or while
    a late answer is still welcome; else missed. Occurrences keep their scheduled place: a
    moved one is where the rule put it.
    """
    partners = [p.key for p in couple.partners]
    per_partner = ritual.completion is Completion.EACH or ritual.partner_local
    involved = {viewer.key} if per_partner else set(partners)
    out = []
    for occ in found:
        answers = history.answers.get(occ.id)
        change = history.changes.get(occ.id)
        done_by = answers.done_by if answers else frozenset()
        skipped_by = answers.skipped_by if answers else frozenset()
        if is_complete(ritual.completion, done_by, partners, viewer.key):
            state = CellState.DONE
        elif (change is not None and change.skipped) or (skipped_by & involved):
            state = CellState.SKIPPED
        elif history.paused.get(occ.id, frozenset()) & involved or any(
            (until := history.paused_until.get(p)) is not None and now <= occ.start < until
            for p in involved
        ):
            state = CellState.PAUSED
        elif now < occ.end + STILL_OPEN:
            state = CellState.UPCOMING
        else:
            state = CellState.MISSED
        start = occ.start.astimezone(tz)
        word = "open" if state is CellState.UPCOMING and occ.start <= now else state.value
        out.append(Cell(occ.id, start, state, f"{start:%a %d %b %H:%M}: {word}"))
    return tuple(out)


def _progress(ritual: Ritual, cells: Sequence[Cell], tz: ZoneInfo, now: datetime) -> Progress:
    """Streak and strength of the heatmap's cells, by ``service/domain/progress.py``."""
    found = [
        progress.Cell(c.occurrence_id, parse_occurrence_id(c.occurrence_id).wall, c.start, c.state)
        for c in cells
    ]
    count = progress.current_streak(found)
    strong = progress.strength(found, ritual.recurrence, now.astimezone(tz).date())
    sentence = strong.sentence[0].upper() + strong.sentence[1:] + "."
    return Progress(count, progress.streak_phrase(count, ritual.recurrence), strong.score, sentence)


def _next(
    couple: Couple, viewer: Partner, now: datetime, changes: Mapping[str, Change], tz: ZoneInfo
) -> tuple[NextOccurrence, ...]:
    found = occurrences(couple, now, now + NEXT_HORIZON, dict(changes))
    mine = [o for o in found if o.partner in (None, viewer.key)][:NEXT_SHOWN]
    return tuple(
        NextOccurrence(
            couple.ritual(o.ritual).name,
            o.start.astimezone(tz),
            your_turn=couple.ritual(o.ritual).who is Who.ALTERNATING and o.planner == viewer.key,
            moved=o.moved_from is not None,
        )
        for o in mine
    )


def _journal(
    couple: Couple, entries: Sequence[JournalEntry], tz: ZoneInfo
) -> tuple[JournalLine, ...]:
    out = []
    for entry in reversed(entries):
        ritual_id = parse_occurrence_id(entry.occurrence_id).ritual
        try:
            name = couple.ritual(ritual_id).name
        except KeyError:
            name = ritual_id
        out.append(JournalLine(name, entry.answered_at.astimezone(tz), entry.note))
    return tuple(out)


def _subscribe(couple: Couple, feed: FeedUrl | None) -> Subscribe | None:
    if feed is None or not any(r.calendar and r.enabled for r in couple.rituals):
        return None
    return Subscribe(feed.url, feed.webcal, feed.google)
