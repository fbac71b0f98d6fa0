"""Both answer, then both see: the texts that reveal each partner's answer to the other.

A ritual with ``reveal: true`` (one that asks a question, such as a check-in) keeps each
partner's answer to themselves until both have answered the same occurrence. Then each
partner gets one text with the other's answer (``<occurrence>/reveal/<partner>``, a
``SendId``: one id per recipient and occurrence, so one claim in the prompt log)::

    Alex answers ─ (nothing yet) ─ Sam answers ─┬─ to Alex: "Sam's check-in: <Sam's answer>"
                                                └─ to Sam:  "Alex's check-in: <Alex's answer>"

An answer is the partner's journal text for the occurrence (a plain DONE has nothing to
show, so a ritual answered DONE by either partner reveals nothing). A long answer is cut to
fit ``REVEAL_SEGMENTS`` SMS segments, ending with a note that the whole is on the dashboard.

Both texts are due when the second answer was logged (the later of the two, so every
delivery of either reply names the same instant) and, like every text, held past the
recipient's quiet hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from service.domain import confirmations as say
from service.domain.changes import NO_CHANGES, Changes
from service.domain.events import Purpose, PurposeKind, SendId
from service.domain.occurrences import find_occurrence
from service.domain.segments import normalise_body, segments
from service.domain.sends import PlannedSend

if TYPE_CHECKING:
    from datetime import datetime

    from service.domain.couples import Couple
    from service.domain.occurrences import Occurrence

__all__ = ["REVEAL_SEGMENTS", "Answer", "find_reveal", "reveal_body", "reveal_sends"]

REVEAL_SEGMENTS = 2
# A cut goes back to the last space when one is this close, so no word is left half-said.
_WORD_BACK = 20


@dataclass(frozen=True, slots=True)
class Answer:
    """One partner's answer to one occurrence: their journal text and when it was logged."""

    text: str
    at: datetime  # aware


def reveal_body(other: str, name: str, answer: str, limit: int = REVEAL_SEGMENTS) -> str:
    """``Sam's check-in: <answer>``, normalised as sent, in at most ``limit`` segments: a
    longer answer is cut (at a word when one ends near) and ends with ``say.REVEAL_CUT``."""
    text = normalise_body(answer.strip())
    whole = normalise_body(say.revealed(other, name, text))
    if segments(whole) <= limit:
        return whole

    def cut(n: int) -> str:
        return normalise_body(say.revealed(other, name, text[:n].rstrip() + say.REVEAL_CUT))

    # Segments only grow with the prefix's length, so the longest that fits is a bisection.
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if segments(cut(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    space = text.rfind(" ", 0, lo + 1)
    if space > 0 and lo - space <= _WORD_BACK:
        lo = space
    return cut(lo)


def reveal_sends(
    couple: Couple, occ: Occurrence, answers: Mapping[str, Answer]
) -> list[PlannedSend]:
    """The reveal text to each partner of ``occ``, by ``answers`` (by partner key); none
    until every partner has answered, none for a ritual that does not reveal."""
    ritual = couple.ritual(occ.ritual)
    if not ritual.reveal or occ.partner is not None:
        return []
    if not all(p.key in answers and answers[p.key].text.strip() for p in couple.partners):
        return []
    due = max(answers[p.key].at for p in couple.partners)
    out = []
    for partner in couple.partners:
        other = couple.other(partner)
        tz = couple.partner_zone(partner)
        at = partner.quiet_hours.release(due, tz) if partner.quiet_hours else due
        send_id = SendId(occ.id, Purpose.reveal(), partner.key)
        out.append(
            PlannedSend(
                id=send_id,
                event_id=str(send_id),
                occurrence_id=occ.id,
                couple=couple.id,
                ritual=ritual.id,
                partner=partner.key,
                purpose=send_id.purpose,
                due=due.astimezone(tz),
                at=at.astimezone(tz),
                starts=occ.start,
                body=reveal_body(other.name, ritual.name, answers[other.key].text),
            )
        )
    return out


def find_reveal(
    couple: Couple,
    send: SendId,
    answers: Mapping[str, Answer],
    changes: Changes = NO_CHANGES,
) -> PlannedSend | None:
    """The reveal text ``send`` as it stands (``answers`` to its occurrence), or None: not
    a reveal, the occurrence is gone or skipped, the ritual no longer reveals, or not every
    partner has answered."""
    if send.purpose.kind is not PurposeKind.REVEAL or send.couple != couple.id:
        return None
    try:
        occ = find_occurrence(couple, send.occurrence_id, changes)
    except ValueError:
        return None
    if occ is None:
        return None
    wanted = SendId(send.occurrence_id, send.purpose.original, send.partner)
    found = next((s for s in reveal_sends(couple, occ, answers) if s.id == wanted), None)
    if found is None or not send.purpose.resend:
        return found
    # The one resend after the carrier could not deliver it: the same text, its own claim.
    return replace(found, id=send, event_id=str(send), purpose=send.purpose)
