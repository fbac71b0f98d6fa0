"""Feed tokens (hashes) and ritual versions in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from service.storage.engine import insert, reading, writing
from service.storage.models import FeedTokenRow, RitualVersionRow

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import Engine

__all__ = ["FeedToken", "FeedTokens", "RitualVersions"]


@dataclass(frozen=True, slots=True)
class FeedToken:
    couple: str
    partner: str
    generation: int
    token_hash: str


class FeedTokens:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def of_couple(self, couple: str) -> dict[str, FeedToken]:
        """The couple's current tokens, by partner key."""
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(
                    FeedTokenRow.partner, FeedTokenRow.generation, FeedTokenRow.token_hash
                ).where(FeedTokenRow.couple == couple)
            ).all()
        return {r.partner: FeedToken(couple, r.partner, r.generation, r.token_hash) for r in rows}

    def find(self, token_hash: str) -> FeedToken | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(FeedTokenRow).where(FeedTokenRow.token_hash == token_hash)
            ).one_or_none()
        if row is None:
            return None
        return FeedToken(row.couple, row.partner, row.generation, row.token_hash)

    def put(self, token: FeedToken, now: datetime) -> None:
        """Make ``token`` the partner's current one (the previous one stops working)."""
        values = {
            "generation": token.generation,
            "token_hash": token.token_hash,
            "created_at": now,
        }
        with writing(self.engine) as conn:
            stmt = insert(conn, FeedTokenRow).values(
                couple=token.couple, partner=token.partner, **values
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[FeedTokenRow.couple, FeedTokenRow.partner], set_=values
                )
            )

    def drop_couple(self, couple: str) -> None:
        with writing(self.engine) as conn:
            conn.execute(delete(FeedTokenRow).where(FeedTokenRow.couple == couple))


class RitualVersions:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def update(
        self, couple: str, hashes: Mapping[str, str], now: datetime
    ) -> dict[str, tuple[int, datetime]]:
        """Record each ritual's content hash; a new hash raises its version to now.

        Returns every ritual's (version, changed_at) after the update.
        """
        with writing(self.engine) as conn:
            rows = {
                r.ritual: r
                for r in conn.execute(
                    select(
                        RitualVersionRow.ritual,
                        RitualVersionRow.content_hash,
                        RitualVersionRow.version,
                        RitualVersionRow.changed_at,
                    ).where(RitualVersionRow.couple == couple)
                )
            }
            out: dict[str, tuple[int, datetime]] = {}
            for ritual, content in hashes.items():
                known = rows.get(ritual)
                if known is not None and known.content_hash == content:
                    out[ritual] = (known.version, known.changed_at)
                    continue
                version = known.version + 1 if known is not None else 0
                values = {"content_hash": content, "version": version, "changed_at": now}
                stmt = insert(conn, RitualVersionRow).values(couple=couple, ritual=ritual, **values)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[RitualVersionRow.couple, RitualVersionRow.ritual],
                        set_=values,
                    )
                )
                out[ritual] = (version, now)
            return out
