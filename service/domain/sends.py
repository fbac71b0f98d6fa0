"""The texts that occurrences imply: a prompt at the start, reminders before it.

Each planned send is one event with a stable id, ``<occurrence id>/<purpose>/<partner>``,
so that planning twice (two schedulers, a restart, a config reload) names the same sends.
``due`` is when the rule says; ``at`` is when it may go out after the recipient's quiet hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from service.domain.changes import NO_CHANGES, Changes
from service.domain.couples import Couple, Partner, Ritual
from service.domain.durations import format_duration
from service.domain.occurrences import Occurrence, find_occurrence, occurrences
from service.domain.texts import render

__all__ = [
    "PROMPT",
    "SNOOZE",
    "PlannedSend",
    "event_id",
    "extra_send",
    "find_send",
    "fired_send",
    "planned_sends",
    "reminder_purpose",
    "sends_for",
]

PROMPT = "prompt"
FIRE = "fire-"
SNOOZE = "snooze-"
# A send held by quiet hours goes out at most this much after it was due.
_LONGEST_HOLD = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PlannedSend:
    event_id: str
    occurrence_id: str
    couple: str
    ritual: str
    partner: str  # partner key
    purpose: str  # "prompt" or "reminder-2d"
    due: datetime  # aware UTC: when the schedule says
    at: datetime  # aware, in the recipient's zone: when it may go out (quiet hours applied)
    starts: datetime  # aware: when the occurrence itself starts
    body: str


def event_id(occurrence_id: str, purpose: str, partner: str) -> str:
    return f"{occurrence_id}/{purpose}/{partner}"


def reminder_purpose(lead: timedelta) -> str:
    return f"reminder-{format_duration(lead)}"


def planned_sends(
    couple: Couple, start: datetime, end: datetime, changes: Changes = NO_CHANGES
) -> list[PlannedSend]:
    """Every text the couple's rituals send with ``at`` in ``[start, end)``, by ``at``;
    skipped occurrences send nothing, moved ones send around their new start."""
    longest_lead = max((d for r in couple.rituals for d in r.remind), default=timedelta(0))
    found = [
        send
        for occ in occurrences(couple, start - _LONGEST_HOLD, end + longest_lead, changes)
        for send in sends_for(couple, occ, start, end)
    ]
    found.sort(key=lambda s: (s.at, s.event_id))
    return found


def find_send(
    couple: Couple, occurrence: str, event: str, changes: Changes = NO_CHANGES
) -> PlannedSend | None:
    """The send ``event`` of ``occurrence`` under the couple's current description and
    ``changes``, or None (the ritual, partner or occurrence is gone or skipped, or the event
    is no longer one of its sends, as after a move)."""
    occ = find_occurrence(couple, occurrence, changes)
    if occ is None:
        return None
    purpose, _, partner = event.removeprefix(occurrence + "/").rpartition("/")
    for prefix in (FIRE, SNOOZE):
        if purpose.startswith(prefix):
            try:
                at = datetime.strptime(purpose.removeprefix(prefix), "%Y%m%dT%H%M%S%z")
                return extra_send(couple, occ, couple.partner(partner), at, prefix)
            except (ValueError, KeyError):
                return None
    return next((s for s in sends_for(couple, occ) if s.event_id == event), None)


def fired_send(couple: Couple, occ: Occurrence, partner: Partner, at: datetime) -> PlannedSend:
    """A prompt of ``occ`` sent by hand at ``at`` (``hearth fire``), with its own event id."""
    return extra_send(couple, occ, partner, at, FIRE)


def extra_send(
    couple: Couple, occ: Occurrence, partner: Partner, at: datetime, kind: str
) -> PlannedSend:
    """The prompt of ``occ`` once more at ``at``: sent by hand (``FIRE``) or after a SNOOZE.

    Its purpose, ``fire-<UTC instant>`` or ``snooze-<UTC instant>``, keeps it apart from the
    occurrence's scheduled prompt, which still goes out at its time.
    """
    ritual = couple.ritual(occ.ritual)
    tz = couple.partner_zone(partner)
    purpose = kind + at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%z")
    return _send(couple, ritual, occ, partner, tz, None, at, at, purpose)


def sends_for(
    couple: Couple, occ: Occurrence, start: datetime | None = None, end: datetime | None = None
) -> list[PlannedSend]:
    """The prompt and reminders of one occurrence, for each partner who receives them.

    With ``start``/``end``, only those whose ``at`` falls in ``[start, end)``; the others are
    never rendered, which is most of the cost of a send.
    """
    ritual = couple.ritual(occ.ritual)
    if not ritual.sms:
        return []
    recipients = [couple.partner(occ.partner)] if occ.partner else list(couple.partners)
    leads: tuple[timedelta | None, ...] = (None, *ritual.remind)
    out = []
    for partner in recipients:
        tz = couple.partner_zone(partner)
        for lead in leads:
            due = occ.start - lead if lead else occ.start
            at = partner.quiet_hours.release(due, tz) if partner.quiet_hours else due
            if (start is not None and at < start) or (end is not None and at >= end):
                continue
            out.append(_send(couple, ritual, occ, partner, tz, lead, due, at))
    return out


def _send(
    couple: Couple,
    ritual: Ritual,
    occ: Occurrence,
    partner: Partner,
    tz: ZoneInfo,
    lead: timedelta | None,
    due: datetime,
    at: datetime,
    purpose: str | None = None,
) -> PlannedSend:
    if purpose is None:
        purpose = reminder_purpose(lead) if lead else PROMPT
        if occ.moved_from is not None:
            purpose += f"@{occ.start.astimezone(UTC):%Y%m%dT%H%MZ}"
    is_planner = occ.planner == partner.key
    which = "prompt" if lead is None else ("planner_reminder" if is_planner else "reminder")
    planner = couple.partner(occ.planner).name if occ.planner else ""
    body = render(
        ritual.text(which),
        partner=partner.name,
        other=couple.other(partner).name,
        planner=planner,
        lead=_lead(lead) if lead else "now",
        time=f"{occ.start.astimezone(tz):%H:%M}",
    )
    return PlannedSend(
        event_id=event_id(occ.id, purpose, partner.key),
        occurrence_id=occ.id,
        couple=couple.id,
        ritual=ritual.id,
        partner=partner.key,
        purpose=purpose,
        due=due.astimezone(tz),
        at=at.astimezone(tz),
        starts=occ.start,
        body=body,
    )


def _lead(span: timedelta) -> str:
    """``in 2 days``, ``in 3 hours``, ``in 1 hour 30 minutes``."""
    minutes = int(span.total_seconds()) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{n} {unit}{'s' if n != 1 else ''}"
        for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
        if n
    ]
    return "in " + " ".join(parts) if parts else "now"
