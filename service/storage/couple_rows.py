"""Every SQL row that belongs to one couple: read whole for ``hearth export``, deleted for
``hearth forget``.

A row belongs to a couple when its ``couple`` column names it, when its occurrence or event
id is one of the couple's (``<couple>/…``), or when it is one of the couple's replies
(``reply_sid``, ``message_sid``, ``reply/<sid>``). A reply that was never tied to a couple
(it arrived while the partner's number was in no file) belongs to the couple whose
partner's number sent it. Deleting looks at every table the database has, not only the
ones named here, so a table added later is covered as long as it keys its rows that way.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, Table, false, inspect, or_, select

from service.encryption import Cipher
from service.storage.engine import reading, translated, writing
from service.storage.models import (
    AnswerRow,
    ChangeRow,
    DashboardTokenRow,
    FeedTokenRow,
    PartnerRow,
    PromptRow,
    ReplyRow,
    RitualVersionRow,
)

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Connection, Engine

__all__ = ["CoupleRows"]

Record = dict[str, Any]


class CoupleRows:
    """One couple's rows on ``engine``; sealed values are opened with ``cipher``."""

    def __init__(self, engine: Engine, cipher: Cipher | None = None) -> None:
        self.engine = engine
        self.cipher = cipher or Cipher()

    def export(self, couple: str, numbers: Collection[str] = ()) -> dict[str, list[Record]]:
        """The couple's rows by part (``sends``, ``replies``, ``answers``, ``journal``,
        ``changes``, ``partners``, ``feed_tokens``, ``dashboard_tokens``,
        ``ritual_versions``), oldest first, as JSON values: instants in RFC 3339 UTC,
        journal text and reply bodies opened, and neither token hashes nor number
        fingerprints."""
        with reading(self.engine) as conn:
            sids = self._reply_sids(conn, couple, numbers)
            sends = _records(
                conn,
                PromptRow,
                PromptRow.couple == couple,
                PromptRow.id,
                drop={"id", "couple", "claimed_at"},
            )
            replies = _records(
                conn,
                ReplyRow,
                ReplyRow.message_sid.in_(sids) if sids else false(),
                ReplyRow.id,
                drop={"id", "couple"},
            )
            answers = _records(
                conn, AnswerRow, AnswerRow.couple == couple, AnswerRow.id, drop={"id", "couple"}
            )
            changes = _records(
                conn,
                ChangeRow,
                ChangeRow.couple == couple,
                ChangeRow.occurrence_id,
                drop={"couple"},
            )
            partners = _records(
                conn, PartnerRow, PartnerRow.couple == couple, PartnerRow.partner, drop={"couple"}
            )
            tokens = _records(
                conn,
                FeedTokenRow,
                FeedTokenRow.couple == couple,
                FeedTokenRow.partner,
                drop={"couple", "token_hash", "nonce"},  # either would open the feed
            )
            dashboards = _records(
                conn,
                DashboardTokenRow,
                DashboardTokenRow.couple == couple,
                DashboardTokenRow.partner,
                drop={"couple", "token_hash", "nonce"},  # either would open the page
            )
            versions = _records(
                conn,
                RitualVersionRow,
                RitualVersionRow.couple == couple,
                RitualVersionRow.ritual,
                drop={"couple"},
            )
        for reply in replies:
            raw: dict[str, str] = json.loads(self.cipher.open(reply.pop("raw"), "replies.raw"))
            reply |= {"from": raw.get("From"), "body": raw.get("Body"), "raw": raw}
        for answer in answers:
            answer["note"] = self.cipher.open(answer["note"], "answers.note")
        journal = [
            {k: a[k] for k in ("occurrence_id", "ritual", "partner", "answered_at")}
            | {"text": a["note"]}
            for a in answers
            if a["action"] == "journal"
        ]
        return {
            "sends": sends,
            "replies": replies,
            "answers": answers,
            "journal": journal,
            "changes": changes,
            "partners": [_partner(p) for p in partners],
            "feed_tokens": tokens,
            "dashboard_tokens": dashboards,
            "ritual_versions": versions,
        }

    def event_ids(self, couple: str, numbers: Collection[str] = ()) -> list[str]:
        """The event ids of the couple's sends and of the confirmations of its replies."""
        with reading(self.engine) as conn:
            sids = self._reply_sids(conn, couple, numbers)
            ids = conn.execute(select(PromptRow.event_id).where(PromptRow.couple == couple))
            return sorted({*ids.scalars(), *(f"reply/{sid}" for sid in sids)})

    def reply_sids(self, couple: str, numbers: Collection[str] = ()) -> list[str]:
        """MessageSids of the couple's replies (those sent from ``numbers`` included)."""
        with reading(self.engine) as conn:
            return self._reply_sids(conn, couple, numbers)

    def token_hashes(self, couple: str) -> list[str]:
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(FeedTokenRow.token_hash).where(FeedTokenRow.couple == couple)
            )
            return list(rows.scalars())

    def delete(self, couple: str, numbers: Collection[str] = ()) -> dict[str, int]:
        """Delete every row of the couple in every table, in one transaction; rows deleted
        by table. On SQLite the WAL is then checkpointed and truncated, so no copy of a
        deleted page outlives it there (``secure_delete`` zeroed them in the file)."""
        deleted: dict[str, int] = {}
        with writing(self.engine) as conn:
            sids = self._reply_sids(conn, couple, numbers)
            for table in _tables(conn):
                where = _belongs(table, couple, sids)
                if where is None:
                    continue
                count = conn.execute(table.delete().where(where)).rowcount
                if count:
                    deleted[table.name] = count
        if self.engine.dialect.name == "sqlite":
            self._scrub_sqlite()
        return deleted

    def _reply_sids(self, conn: Connection, couple: str, numbers: Collection[str]) -> list[str]:
        sids = set(
            conn.execute(select(ReplyRow.message_sid).where(ReplyRow.couple == couple)).scalars()
        )
        if numbers:
            # Never tied to a couple: only the raw form (sealed, perhaps) says who sent it.
            for sid, raw in conn.execute(
                select(ReplyRow.message_sid, ReplyRow.raw).where(ReplyRow.couple.is_(None))
            ):
                sender = json.loads(self.cipher.open(raw, "replies.raw")).get("From")
                if sender in numbers:
                    sids.add(sid)
        return sorted(sids)

    def _scrub_sqlite(self) -> None:
        with translated(self.engine):
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cursor.close()
            finally:
                raw.close()


def _tables(conn: Connection) -> list[Table]:
    metadata = MetaData()
    names = [n for n in inspect(conn).get_table_names() if n != "alembic_version"]
    return [Table(name, metadata, autoload_with=conn) for name in names]


def _belongs(table: Table, couple: str, sids: list[str]) -> ColumnElement[bool] | None:
    columns = table.c
    found: list[ColumnElement[bool]] = []
    if "couple" in columns:
        found.append(columns.couple == couple)
    for name in ("occurrence_id", "event_id"):
        if name in columns:
            found.append(columns[name].startswith(f"{couple}/", autoescape=True))
    if sids:
        for name in ("reply_sid", "message_sid"):
            if name in columns:
                found.append(columns[name].in_(sids))
        if "event_id" in columns:
            found.append(columns.event_id.in_([f"reply/{sid}" for sid in sids]))
    return or_(*found) if found else None


def _records(
    conn: Connection,
    model: Any,
    where: ColumnElement[bool],
    order: Any,
    drop: set[str],
) -> list[Record]:
    table: Table = model.__table__
    rows = conn.execute(select(table).where(where).order_by(order)).mappings()
    return [{k: _json(v) for k, v in row.items() if k not in drop} for row in rows]


def _json(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):  # a StrEnum state
        return str(value)
    return value


def _partner(row: Record) -> Record:
    """A partner's standing: opted out, paused until, unreachable (no number fingerprint)."""
    unreachable = None
    if row.get("unreachable_code") is not None:
        unreachable = {"code": row["unreachable_code"], "at": row["unreachable_at"]}
    return {
        "partner": row["partner"],
        "opted_out": row["opted_out"],
        "paused_until": row["paused_until"],
        "unreachable": unreachable,
        "updated_at": row["updated_at"],
    }
