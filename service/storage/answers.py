"""Reading what partners answered: per occurrence, per ritual, and the couple's changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from service.domain.changes import NO_CHANGES, Change, Changes
from service.domain.reveals import Answer
from service.encryption import Cipher
from service.storage.engine import reading
from service.storage.models import AnswerRow, ChangeRow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Engine

__all__ = ["AnswerLog", "JournalEntry", "OccurrenceAnswers", "StampedChange"]


@dataclass(frozen=True, slots=True)
class OccurrenceAnswers:
    """Who has answered one occurrence, and how; plus its change, if any."""

    done_by: frozenset[str] = frozenset()
    skipped_by: frozenset[str] = frozenset()
    change: Change | None = None

    @property
    def changes(self) -> Changes:
        """The occurrence's change as the ``changes`` the domain expansion takes."""
        return {self.change.occurrence_id: self.change} if self.change else NO_CHANGES


@dataclass(frozen=True, slots=True)
class StampedChange:
    """A change with what the feed needs: its revision and when it was made."""

    change: Change
    revision: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class JournalEntry:
    occurrence_id: str
    partner: str
    note: str
    answered_at: datetime


@dataclass
class _Builder:
    done: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)


class AnswerLog:
    """Answers and occurrence changes as written by ``ReplyLog.settle``; notes are opened
    with ``cipher`` (the one they were sealed with, or an older key it holds)."""

    def __init__(self, engine: Engine, cipher: Cipher | None = None) -> None:
        self.engine = engine
        self.cipher = cipher or Cipher()

    def changes(self, couple: str) -> dict[str, Change]:
        """The couple's skipped and moved occurrences, by occurrence id."""
        return {i: s.change for i, s in self.stamped_changes(couple).items()}

    def stamped_changes(self, couple: str) -> dict[str, StampedChange]:
        """The couple's changes with their revisions and times, by occurrence id."""
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(
                    ChangeRow.occurrence_id,
                    ChangeRow.skipped,
                    ChangeRow.moved_to,
                    ChangeRow.revision,
                    ChangeRow.updated_at,
                ).where(ChangeRow.couple == couple)
            ).all()
        return {
            r.occurrence_id: StampedChange(
                Change(r.occurrence_id, r.skipped, r.moved_to), r.revision, r.updated_at
            )
            for r in rows
        }

    def of(self, occurrence_ids: Iterable[str]) -> dict[str, OccurrenceAnswers]:
        """Answers of each occurrence (every id asked for is in the result)."""
        ids = list(dict.fromkeys(occurrence_ids))
        built = {i: _Builder() for i in ids}
        changes: dict[str, Change] = {}
        with reading(self.engine) as conn:
            for chunk in _chunks(ids, 500):
                for a in conn.execute(
                    select(AnswerRow.occurrence_id, AnswerRow.partner, AnswerRow.action).where(
                        AnswerRow.occurrence_id.in_(chunk)
                    )
                ):
                    target = built[a.occurrence_id]
                    (target.skipped if a.action == "skipped" else target.done).add(a.partner)
                for c in conn.execute(
                    select(ChangeRow.occurrence_id, ChangeRow.skipped, ChangeRow.moved_to).where(
                        ChangeRow.occurrence_id.in_(chunk)
                    )
                ):
                    changes[c.occurrence_id] = Change(c.occurrence_id, c.skipped, c.moved_to)
        return {
            i: OccurrenceAnswers(frozenset(b.done), frozenset(b.skipped), changes.get(i))
            for i, b in built.items()
        }

    def journal(
        self, couple: str, partner: str | None = None, *, occurrence_id: str | None = None
    ) -> list[JournalEntry]:
        """The couple's journal entries (free-text answers), oldest first; one partner's, or
        one occurrence's, when given."""
        query = select(
            AnswerRow.occurrence_id, AnswerRow.partner, AnswerRow.note, AnswerRow.answered_at
        ).where(AnswerRow.couple == couple, AnswerRow.action == "journal")
        if partner is not None:
            query = query.where(AnswerRow.partner == partner)
        if occurrence_id is not None:
            query = query.where(AnswerRow.occurrence_id == occurrence_id)
        with reading(self.engine) as conn:
            rows = conn.execute(query.order_by(AnswerRow.answered_at, AnswerRow.id)).all()
        return [
            JournalEntry(
                r.occurrence_id, r.partner, self.cipher.open(r.note, "answers.note"), r.answered_at
            )
            for r in rows
        ]

    def answers_to(self, occurrence_id: str) -> dict[str, Answer]:
        """Each partner's answer to one occurrence (their journal text), by partner key."""
        couple = occurrence_id.split("/", 1)[0]
        return _answers(self.journal(couple, occurrence_id=occurrence_id))


def _answers(entries: list[JournalEntry]) -> dict[str, Answer]:
    by_partner: dict[str, list[JournalEntry]] = {}
    for entry in entries:
        by_partner.setdefault(entry.partner, []).append(entry)
    # Oldest first; a partner who wrote twice is shown both notes, timed by the last.
    return {
        partner: Answer(" / ".join(e.note for e in mine if e.note), mine[-1].answered_at)
        for partner, mine in by_partner.items()
    }


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
