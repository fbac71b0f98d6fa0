"""Dashboard tokens in SQL: the hash that finds a request's partner, the nonce that makes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from service.storage.engine import insert, reading, writing
from service.storage.models import DashboardTokenRow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy import Engine

__all__ = ["DashboardToken", "DashboardTokens"]


@dataclass(frozen=True, slots=True)
class DashboardToken:
    couple: str
    partner: str
    nonce: str
    token_hash: str


class DashboardTokens:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def of_couple(self, couple: str) -> dict[str, DashboardToken]:
        """The couple's current tokens, by partner key."""
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(
                    DashboardTokenRow.partner, DashboardTokenRow.nonce, DashboardTokenRow.token_hash
                ).where(DashboardTokenRow.couple == couple)
            ).all()
        return {r.partner: DashboardToken(couple, r.partner, r.nonce, r.token_hash) for r in rows}

    def find(self, token_hash: str) -> DashboardToken | None:
        """The token whose hash is ``token_hash``: an index lookup, never a scan of secrets."""
        with reading(self.engine) as conn:
            row = conn.execute(
                select(DashboardTokenRow).where(DashboardTokenRow.token_hash == token_hash)
            ).one_or_none()
        if row is None:
            return None
        return DashboardToken(row.couple, row.partner, row.nonce, row.token_hash)

    def put(self, token: DashboardToken, now: datetime, *, replace: bool = True) -> bool:
        """Make ``token`` the partner's current one (the previous one stops working). With
        ``replace=False`` an existing token stays (two first visits agree on one); returns
        whether ``token`` was written."""
        values = {"nonce": token.nonce, "token_hash": token.token_hash, "created_at": now}
        with writing(self.engine) as conn:
            stmt = insert(conn, DashboardTokenRow).values(
                couple=token.couple, partner=token.partner, **values
            )
            keys = [DashboardTokenRow.couple, DashboardTokenRow.partner]
            if replace:
                done = conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=values))
            else:
                done = conn.execute(stmt.on_conflict_do_nothing(index_elements=keys))
            return bool(done.rowcount)

    def drop_couple(self, couple: str) -> None:
        with writing(self.engine) as conn:
            conn.execute(delete(DashboardTokenRow).where(DashboardTokenRow.couple == couple))
