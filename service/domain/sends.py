"""The texts that occurrences imply: a prompt at the start, reminders before it.

Each planned send is one event with a stable id (``SendId``, ``service/domain/events.py``),
so that planning twice (two schedulers, a restart, a config reload) names the same sends.
``due`` is when the rule says; ``at`` is when it may go out after the recipient's quiet hours;
``deadline`` is the last instant it may go out at all (``service/domain/deadlines.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from service.domain.changes import NO_CHANGES, Changes
from service.domain.couples import Couple, Partner, Ritual
from service.domain.deadlines import Grace, deadline
from service.domain.durations import format_duration
from service.domain.events import Purpose, SendId
from service.domain.kinds import Who
from service.domain.occurrences import Occurrence, find_occurrence, occurrences
from service.domain.segments import SEGMENT_WARNING, Cost, cost, normalise_body
from service.domain.texts import render

__all__ = [
    "LongText",
    "PlannedSend",
    "RitualText",
    "extra_send",
    "find_send",
    "long_texts",
    "planned_sends",
    "ritual_texts",
    "sends_for",
]

# A send held by quiet hours goes out at most this much after it was due.
_LONGEST_HOLD = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PlannedSend:
    id: SendId
    event_id: str  # str(id), spelled once
    occurrence_id: str
    couple: str
    ritual: str
    partner: str  # partner key
    purpose: Purpose
    due: datetime  # aware UTC: when the schedule says
    at: datetime  # aware, in the recipient's zone: when it may go out (quiet hours applied)
    starts: datetime  # aware: when the occurrence itself starts
    body: str

    def deadline(self, grace: Grace) -> datetime:
        """The last instant this text may go out (the claim and the send path both ask)."""
        return deadline(self.purpose, self.at, self.starts, grace)


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


def find_send(couple: Couple, send: SendId, changes: Changes = NO_CHANGES) -> PlannedSend | None:
    """The text ``send`` under the couple's current description and ``changes``, or None
    (the ritual, partner or occurrence is gone or skipped, or the text is no longer one of
    its sends, as after a move)."""
    if send.is_summary or send.couple != couple.id:
        return None
    if send.purpose.resend:
        # The same text as the one it repeats, under its own id and claim.
        first = find_send(couple, SendId(send.occurrence_id, send.purpose.original, send.partner),
                          changes)  # fmt: skip
        if first is None:
            return None
        return replace(first, id=send, event_id=str(send), purpose=send.purpose)
    try:
        occ = find_occurrence(couple, send.occurrence_id, changes)
    except ValueError:
        return None
    if occ is None:
        return None
    if send.purpose.is_extra:
        assert send.purpose.at is not None
        try:
            partner = couple.partner(send.partner)
        except KeyError:
            return None
        if occ.partner not in (None, partner.key) or not couple.ritual(occ.ritual).sms:
            return None
        return extra_send(couple, occ, partner, send.purpose)
    wanted = str(send)
    return next((s for s in sends_for(couple, occ) if s.event_id == wanted), None)


def extra_send(couple: Couple, occ: Occurrence, partner: Partner, purpose: Purpose) -> PlannedSend:
    """The prompt of ``occ`` once more at ``purpose.at``: a SNOOZE, or sent by hand (FIRE).

    Its purpose keeps it apart from the occurrence's scheduled prompt, which still goes out
    at its time; like every text it is held past the recipient's quiet hours.
    """
    assert purpose.is_extra
    assert purpose.at is not None
    ritual = couple.ritual(occ.ritual)
    tz = couple.partner_zone(partner)
    due = purpose.at
    at = partner.quiet_hours.release(due, tz) if partner.quiet_hours else due
    return _send(couple, ritual, occ, partner, tz, None, due, at, purpose)


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


@dataclass(frozen=True, slots=True)
class RitualText:
    """One text a ritual sends a partner, rendered with the couple's names."""

    ritual: str
    partner: str  # partner key
    label: str  # prompt, reminder-2d, or reminder-2d as planner
    body: str  # as rendered, before the senders' normalisation


@dataclass(frozen=True, slots=True)
class LongText:
    text: RitualText
    cost: Cost  # of the normalised body, as it goes out


def ritual_texts(couple: Couple) -> list[RitualText]:
    """Every distinct text the couple's SMS rituals send each partner, rendered as
    ``sends_for`` renders it: the prompt (which SNOOZE and FIRE send again) and each
    reminder; for alternating rituals, the reminder to the planner and to the other partner,
    and the prompt naming either planner. The time is the rule's nominal one (always HH:MM).
    No occurrence is needed, so a ritual whose dates are all past or future counts too."""
    out: list[RitualText] = []
    for ritual in couple.rituals:
        if not (ritual.sms and ritual.enabled):
            continue
        time = f"{ritual.recurrence.time:%H:%M}"
        alternating = ritual.who is Who.ALTERNATING
        for partner in couple.partners:
            other = couple.other(partner)
            planners = (partner, other) if alternating else (None,)
            seen: set[tuple[str, str]] = set()
            for lead in (None, *ritual.remind):
                for planner in planners:
                    body = _body(couple, ritual, partner, lead, planner, time)
                    label = "prompt" if lead is None else f"reminder-{format_duration(lead)}"
                    if lead is not None and planner is partner:
                        label += " as planner"
                    if (label, body) not in seen:
                        seen.add((label, body))
                        out.append(RitualText(ritual.id, partner.key, label, body))
    return out


def long_texts(couple: Couple, limit: int = SEGMENT_WARNING) -> list[LongText]:
    """The couple's ritual texts that need more than ``limit`` SMS segments once normalised."""
    costs = (LongText(t, cost(normalise_body(t.body))) for t in ritual_texts(couple))
    return [t for t in costs if t.cost.segments > limit]


def _body(
    couple: Couple,
    ritual: Ritual,
    partner: Partner,
    lead: timedelta | None,
    planner: Partner | None,
    time: str,
) -> str:
    """The text ``ritual`` sends ``partner`` (a reminder ``lead`` ahead, or the prompt), with
    ``planner`` planning this occurrence (alternating rituals)."""
    is_planner = planner is not None and planner.key == partner.key
    which = "prompt" if lead is None else ("planner_reminder" if is_planner else "reminder")
    return render(
        ritual.text(which),
        partner=partner.name,
        other=couple.other(partner).name,
        planner=planner.name if planner else "",
        lead=_lead(lead) if lead else "now",
        time=time,
    )


def _send(
    couple: Couple,
    ritual: Ritual,
    occ: Occurrence,
    partner: Partner,
    tz: ZoneInfo,
    lead: timedelta | None,
    due: datetime,
    at: datetime,
    purpose: Purpose | None = None,
) -> PlannedSend:
    if purpose is None:
        moved_to = occ.start if occ.moved_from is not None else None
        purpose = Purpose.reminder(lead, moved_to) if lead else Purpose.prompt(moved_to)
    planner = couple.partner(occ.planner) if occ.planner else None
    body = _body(couple, ritual, partner, lead, planner, f"{occ.start.astimezone(tz):%H:%M}")
    send_id = SendId(occ.id, purpose, partner.key)
    return PlannedSend(
        id=send_id,
        event_id=str(send_id),
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
