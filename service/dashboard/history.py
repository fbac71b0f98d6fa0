"""Reading a dashboard's ``History`` from storage: answers, changes, pauses, journal, and
the other partner's answers revealed to the viewer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.dashboard.view import History, heatmap_window
from service.domain.occurrences import occurrences

if TYPE_CHECKING:
    from datetime import datetime

    from service.domain.couples import Couple, Partner
    from service.storage import AnswerLog, JournalEntry, PartnerStates, PromptLog

__all__ = ["read_history"]


def read_history(
    couple: Couple,
    viewer: Partner,
    now: datetime,
    answers: AnswerLog,
    prompts: PromptLog,
    partners: PartnerStates,
) -> History:
    """What ``build_dashboard`` needs for the viewer's heatmap window at ``now``."""
    start, end = heatmap_window(now, couple.partner_zone(viewer))
    ids = [o.id for o in occurrences(couple, start, end)]
    return History(
        answers=answers.of(ids),
        changes=answers.changes(couple.id),
        paused=prompts.paused(couple.id, start),
        paused_until={p.key: partners.get(couple.id, p.key).paused_until for p in couple.partners},
        journal=answers.journal(couple.id, viewer.key),
        revealed=_revealed(couple, viewer, answers, prompts),
    )


def _revealed(
    couple: Couple, viewer: Partner, answers: AnswerLog, prompts: PromptLog
) -> list[JournalEntry]:
    """The other partner's answers that were texted to the viewer (both answered, then both
    saw): never one whose reveal did not go out."""
    if not any(r.reveal for r in couple.rituals):
        return []
    shown = prompts.revealed_to(couple.id, viewer.key)
    if not shown:
        return []
    other = couple.other(viewer).key
    return [e for e in answers.journal(couple.id, other) if e.occurrence_id in shown]
