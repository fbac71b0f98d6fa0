"""Inbound texts and what they did: stored raw first, settled once, confirmed once.

The webhook ``store``s the raw form (keyed by MessageSid, so Twilio's retries add nothing)
before it answers; the ``reply.received`` actor then ``settle``s it: one transaction marks
the reply handled *and* writes its effects (answers, skipped or moved occurrences, partner
opt-outs and pauses), and only the caller whose update moved it out of ``received`` writes
them. The confirmation text is stored with it and sent afterwards; ``confirm`` records that.
A worker dying between settling and confirming leaves a handled reply whose confirmation
the next delivery sends; one dying during the provider call may send it twice, as prompts.

    received ─settle─▶ handled ─confirm─▶ confirmed
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from service.encryption import Cipher
from service.storage.engine import insert, reading, writing
from service.storage.models import AnswerRow, ChangeRow, ReplyRow, ReplyState
from service.storage.partner_states import upsert_partner

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = [
    "AnswerEffect",
    "ChangeEffect",
    "PartnerEffect",
    "ReplyLog",
    "ReplyRecord",
    "Settlement",
]


@dataclass(frozen=True, slots=True)
class ReplyRecord:
    message_sid: str
    raw: dict[str, str]
    state: ReplyState
    received_at: datetime
    confirmation: str | None
    couple: str | None
    partner: str | None
    verb: str | None
    outcome: str | None
    occurrence_id: str | None


@dataclass(frozen=True, slots=True)
class AnswerEffect:
    """``partner`` answered ``occurrence_id``: ``done``, ``journal`` or ``skipped``."""

    couple: str
    ritual: str
    occurrence_id: str
    partner: str
    action: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class ChangeEffect:
    """``occurrence_id`` is skipped, or moved to ``moved_to`` (aware)."""

    couple: str
    ritual: str
    occurrence_id: str
    partner: str
    skipped: bool = False
    moved_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class PartnerEffect:
    """A partner's texts stop or start (``opted_out``), or pause until ``paused_until``."""

    couple: str
    partner: str
    opted_out: bool | None = None  # None: unchanged
    pause: bool = False  # True: set ``paused_until`` (None resumes)
    paused_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """What handling a reply decided: the record, its effects and the text to send back."""

    outcome: str  # a short code, such as "done", "no-target", "unknown-number"
    confirmation: str | None  # None: nothing to send back
    couple: str | None = None
    partner: str | None = None
    verb: str | None = None
    occurrence_id: str | None = None
    answers: tuple[AnswerEffect, ...] = ()
    changes: tuple[ChangeEffect, ...] = ()
    partners: tuple[PartnerEffect, ...] = ()


class ReplyLog:
    """Replies on ``engine``: stored before the webhook answers, settled and confirmed once.

    The raw form and the answers' notes are stored sealed by ``cipher`` (plaintext when it
    has no key; ``Settings.cipher`` gives the service's).
    """

    def __init__(self, engine: Engine, cipher: Cipher | None = None) -> None:
        self.engine = engine
        self.cipher = cipher or Cipher()

    def store(self, message_sid: str, raw: Mapping[str, str], now: datetime) -> bool:
        """Keep the raw reply; False when this MessageSid was stored before (a webhook retry)."""
        values = {
            "message_sid": message_sid,
            "raw": self.cipher.seal(
                json.dumps(dict(raw), ensure_ascii=False, sort_keys=True), "replies.raw"
            ),
            "state": ReplyState.RECEIVED,
            "received_at": now,
        }
        with writing(self.engine) as conn:
            stmt = insert(conn, ReplyRow).values(values)
            stmt = stmt.on_conflict_do_nothing(index_elements=[ReplyRow.message_sid])
            return conn.execute(stmt.returning(ReplyRow.id)).first() is not None

    def get(self, message_sid: str) -> ReplyRecord | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(
                    ReplyRow.message_sid,
                    ReplyRow.raw,
                    ReplyRow.state,
                    ReplyRow.received_at,
                    ReplyRow.confirmation,
                    ReplyRow.couple,
                    ReplyRow.partner,
                    ReplyRow.verb,
                    ReplyRow.outcome,
                    ReplyRow.occurrence_id,
                ).where(ReplyRow.message_sid == message_sid)
            ).one_or_none()
        if row is None:
            return None
        return ReplyRecord(
            message_sid=row.message_sid,
            raw=json.loads(self.cipher.open(row.raw, "replies.raw")),
            state=row.state,
            received_at=row.received_at,
            confirmation=row.confirmation,
            couple=row.couple,
            partner=row.partner,
            verb=row.verb,
            outcome=row.outcome,
            occurrence_id=row.occurrence_id,
        )

    def settle(self, message_sid: str, settled: Settlement, now: datetime) -> bool:
        """Mark the reply handled and write its effects, atomically; False if it was not
        ``received`` any more (another delivery settled it first: nothing is written)."""
        with writing(self.engine) as conn:
            moved = conn.execute(
                update(ReplyRow)
                .where(ReplyRow.message_sid == message_sid, ReplyRow.state == ReplyState.RECEIVED)
                .values(
                    state=ReplyState.HANDLED,
                    couple=settled.couple,
                    partner=settled.partner,
                    verb=settled.verb,
                    occurrence_id=settled.occurrence_id,
                    outcome=settled.outcome,
                    confirmation=settled.confirmation,
                    handled_at=now,
                )
            )
            if moved.rowcount != 1:
                return False
            for answer in settled.answers:
                note = self.cipher.seal(answer.note, "answers.note")
                _insert_answer(conn, message_sid, answer, note, now)
            for change in settled.changes:
                _upsert_change(conn, message_sid, change, now)
            for p in settled.partners:
                values: dict[str, object] = {}
                if p.opted_out is not None:
                    values["opted_out"] = p.opted_out
                if p.pause:
                    values["paused_until"] = p.paused_until
                if values:
                    upsert_partner(conn, p.couple, p.partner, now, **values)
            return True

    def confirm(self, message_sid: str, provider_id: str | None, now: datetime) -> bool:
        """Record that the confirmation went out (or that none was due); False if not handled."""
        with writing(self.engine) as conn:
            done = conn.execute(
                update(ReplyRow)
                .where(ReplyRow.message_sid == message_sid, ReplyRow.state == ReplyState.HANDLED)
                .values(state=ReplyState.CONFIRMED, confirmed_at=now, provider_id=provider_id)
            )
            return done.rowcount == 1

    def unfinished(self, received_before: datetime, limit: int = 500) -> list[str]:
        """MessageSids not finished that arrived before ``received_before``, oldest first:
        unhandled, or handled with their follow-ups and confirmation not done (a crash
        after ``settle``); handling them again finishes them, once."""
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(ReplyRow.message_sid)
                .where(
                    ReplyRow.state != ReplyState.CONFIRMED,
                    ReplyRow.received_at < received_before,
                )
                .order_by(ReplyRow.received_at)
                .limit(limit)
            )
            return [r.message_sid for r in rows]


def _insert_answer(
    conn: Connection, sid: str, answer: AnswerEffect, note: str, now: datetime
) -> None:
    stmt = insert(conn, AnswerRow).values(
        reply_sid=sid,
        couple=answer.couple,
        ritual=answer.ritual,
        occurrence_id=answer.occurrence_id,
        partner=answer.partner,
        action=answer.action,
        note=note,
        answered_at=now,
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=[AnswerRow.reply_sid]))


def _upsert_change(conn: Connection, sid: str, change: ChangeEffect, now: datetime) -> None:
    moved_to = change.moved_to.astimezone(UTC) if change.moved_to is not None else None
    values = {
        "skipped": change.skipped,
        "moved_to": moved_to,
        "by_partner": change.partner,
        "reply_sid": sid,
        "updated_at": now,
    }
    stmt = insert(conn, ChangeRow).values(
        occurrence_id=change.occurrence_id,
        couple=change.couple,
        ritual=change.ritual,
        revision=1,
        **values,
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[ChangeRow.occurrence_id],
            set_={**values, "revision": ChangeRow.revision + 1},
        )
    )
