"""Occurrences: one instance of a ritual at one instant, with an id that never changes.

An occurrence is identified by couple, ritual id and its *nominal local start* (the wall
time the rule names, before any gap shift), plus the partner for partner-local rituals.
Re-planning after an edit or a restart therefore yields the same ids, and the fall-back
hour cannot produce a second occurrence: one local wall time, one id, one instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from service.domain.changes import NO_CHANGES, Changes
from service.domain.couples import Couple, Partner, Ritual
from service.domain.kinds import RitualKind, Who
from service.domain.recurrence import EPOCH, local_starts, ordinal
from service.domain.wallclock import resolve

__all__ = [
    "Occurrence",
    "OccurrenceKey",
    "find_occurrence",
    "occurrence_id",
    "occurrences",
    "parse_occurrence_id",
    "ritual_occurrences",
]

# Local bounds are widened by this much before filtering on instants: no zone's offset
# changes by more than a day at once, so nothing near the window's edge is missed.
_MARGIN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Occurrence:
    id: str
    couple: str
    ritual: str
    kind: RitualKind
    wall: datetime  # nominal local start, naive: the occurrence's identity
    start: datetime  # aware, in ``timezone``
    end: datetime  # aware, in ``timezone``; start + duration in elapsed time
    timezone: str
    partner: str | None  # partner key, for partner-local rituals only
    planner: str | None  # partner key, for alternating rituals only
    calendar: bool
    moved_from: datetime | None = None  # the rule's start, when a partner moved this one


def occurrence_id(couple: str, ritual: str, wall: datetime, partner: str | None = None) -> str:
    """``alex-sam/check_in/20261125T2100`` (``/alex`` appended for partner-local rituals)."""
    base = f"{couple}/{ritual}/{wall:%Y%m%dT%H%M}"
    return f"{base}/{partner}" if partner else base


@dataclass(frozen=True, slots=True)
class OccurrenceKey:
    """What an occurrence id names: couple, ritual, nominal local start, and partner."""

    couple: str
    ritual: str
    wall: datetime
    partner: str | None


def parse_occurrence_id(value: str) -> OccurrenceKey:
    """The inverse of ``occurrence_id``; ``ValueError`` when ``value`` is not one."""
    parts = value.split("/")
    if len(parts) not in (3, 4):
        raise ValueError(f"{value!r} is not an occurrence id (couple/ritual/YYYYMMDDTHHMM)")
    try:
        wall = datetime.strptime(parts[2], "%Y%m%dT%H%M")  # noqa: DTZ007 - a wall time
    except ValueError:
        raise ValueError(
            f"{value!r}: {parts[2]!r} is not a local start like 20261125T2100"
        ) from None
    return OccurrenceKey(parts[0], parts[1], wall, parts[3] if len(parts) == 4 else None)


def find_occurrence(
    couple: Couple, occurrence: str, changes: Changes = NO_CHANGES
) -> Occurrence | None:
    """The couple's occurrence with this id under its current description, or None (also
    when it was skipped); moved to its new start when ``changes`` moved it."""
    change = changes.get(occurrence)
    if change is not None and change.skipped:
        return None
    found = _find(couple, occurrence)
    if found is not None and change is not None and change.moved_to is not None:
        return _moved(found, change.moved_to)
    return found


def _find(couple: Couple, occurrence: str) -> Occurrence | None:
    key = parse_occurrence_id(occurrence)
    if key.couple != couple.id:
        return None
    try:
        ritual = couple.ritual(key.ritual)
        owner = couple.partner(key.partner) if key.partner else None
    except KeyError:
        return None
    instant = resolve(key.wall, couple.zone_of(ritual, owner))
    for found in ritual_occurrences(couple, ritual, instant, instant + timedelta(minutes=1)):
        if found.id == occurrence:
            return found
    return None


def occurrences(
    couple: Couple,
    start: datetime,
    end: datetime,
    changes: Changes = NO_CHANGES,
    *,
    calendar_only: bool = False,
) -> list[Occurrence]:
    """Every occurrence of the couple's enabled rituals starting in ``[start, end)``, by start,
    with ``changes`` applied: skipped ones left out, moved ones at their new start. With
    ``calendar_only``, only calendar rituals are expanded (what a feed shows)."""
    rituals = [r for r in couple.rituals if r.calendar or not calendar_only]
    found = [o for ritual in rituals for o in ritual_occurrences(couple, ritual, start, end)]
    if changes:
        found = [o for o in found if o.id not in changes]
        for change in changes.values():
            moved_to = change.moved_to
            if change.skipped or moved_to is None or not start <= moved_to < end:
                continue
            original = _find(couple, change.occurrence_id)
            if original is not None and (original.calendar or not calendar_only):
                found.append(_moved(original, moved_to))
    found.sort(key=lambda o: (o.start, o.id))
    return found


def _moved(occ: Occurrence, moved_to: datetime) -> Occurrence:
    tz = occ.start.tzinfo
    return replace(
        occ,
        start=moved_to.astimezone(tz),
        end=(moved_to + (occ.end - occ.start)).astimezone(tz),
        moved_from=occ.start,
    )


def ritual_occurrences(
    couple: Couple, ritual: Ritual, start: datetime, end: datetime
) -> Iterator[Occurrence]:
    """Occurrences of one ritual starting in ``[start, end)`` (aware bounds), in order."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("window bounds must be aware datetimes")
    if not ritual.enabled:
        return
    owners: tuple[Partner | None, ...] = couple.partners if ritual.partner_local else (None,)
    for owner in owners:
        yield from _series(couple, ritual, owner, start, end)


def _series(
    couple: Couple, ritual: Ritual, owner: Partner | None, start: datetime, end: datetime
) -> Iterator[Occurrence]:
    tz = couple.zone_of(ritual, owner)
    tz_name = str(tz.key)
    rec = ritual.recurrence
    anchor = ritual.start or EPOCH
    lo = start.astimezone(tz).replace(tzinfo=None) - _MARGIN
    hi = end.astimezone(tz).replace(tzinfo=None) + _MARGIN
    owner_key = owner.key if owner else None
    for wall in local_starts(rec, anchor, lo, hi, ritual.end):
        instant = resolve(wall, tz)
        if not start <= instant < end:
            continue
        planner = None
        if ritual.who is Who.ALTERNATING:
            planner = couple.partners[ordinal(rec, anchor, wall) % 2].key
        yield Occurrence(
            id=occurrence_id(couple.id, ritual.id, wall, owner_key),
            couple=couple.id,
            ritual=ritual.id,
            kind=ritual.kind,
            wall=wall,
            start=instant.astimezone(tz),
            end=(instant + ritual.duration).astimezone(tz),
            timezone=tz_name,
            partner=owner_key,
            planner=planner,
            calendar=ritual.calendar,
        )
