"""Feed tokens (nonce and hash, never the token) and ritual versions in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from service.storage.engine import insert, reading, writing
from service.storage.models import FeedTokenRow, RitualVersionRow

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy import Engine, Row

__all__ = ["FeedToken", "FeedTokens", "RitualVersions"]


@dataclass(frozen=True, slots=True)
class FeedToken:
    couple: str
    partner: str
    generation: int  # 1 when made, +1 on each rotation
    nonce: str
    token_hash: str


class FeedTokens:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def of_couple(self, couple: str) -> dict[str, FeedToken]:
        """The couple's current tokens, by partner key."""
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(*_COLUMNS).where(FeedTokenRow.couple == couple, _MADE_FROM_A_NONCE)
            ).all()
        return {r.partner: _token(r) for r in rows}

    def couples(self) -> list[str]:
        """Every couple that has a feed token (``hearth feed rotate --all``)."""
        with reading(self.engine) as conn:
            found = conn.execute(select(FeedTokenRow.couple).distinct()).scalars()
            return sorted(found)

    def find(self, token_hash: str) -> FeedToken | None:
        """The token whose hash is ``token_hash``: an index lookup, never a scan of secrets."""
        with reading(self.engine) as conn:
            row = conn.execute(
                select(*_COLUMNS).where(FeedTokenRow.token_hash == token_hash, _MADE_FROM_A_NONCE)
            ).one_or_none()
        return None if row is None else _token(row)

    def make(self, token: FeedToken, now: datetime) -> FeedToken:
        """The partner's token: ``token`` if they had none, else the one they have (two
        processes making one at once agree on the first). A row an older Hearth derived
        (no nonce) is not a token: it is replaced."""
        values = {"generation": token.generation, "nonce": token.nonce,
                  "token_hash": token.token_hash, "created_at": now}  # fmt: skip
        with writing(self.engine) as conn:
            stmt = insert(conn, FeedTokenRow).values(
                couple=token.couple, partner=token.partner, **values
            )
            done = conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[FeedTokenRow.couple, FeedTokenRow.partner],
                    set_=values,
                    where=FeedTokenRow.nonce.is_(None),
                )
            )
        if done.rowcount:
            return token
        return self.of_couple(token.couple)[token.partner]

    def replace(self, old: FeedToken, new: FeedToken, now: datetime) -> bool:
        """Make ``new`` the partner's token if ``old`` still is (a compare-and-set: of two
        rotations at once, one wins and the other is told); returns whether it was."""
        with writing(self.engine) as conn:
            done = conn.execute(
                update(FeedTokenRow)
                .where(
                    FeedTokenRow.couple == old.couple,
                    FeedTokenRow.partner == old.partner,
                    FeedTokenRow.token_hash == old.token_hash,
                )
                .values(
                    generation=new.generation,
                    nonce=new.nonce,
                    token_hash=new.token_hash,
                    created_at=now,
                )
            )
            return bool(done.rowcount)

    def drop_couple(self, couple: str) -> None:
        with writing(self.engine) as conn:
            conn.execute(delete(FeedTokenRow).where(FeedTokenRow.couple == couple))


# Rows an older Hearth wrote (derived tokens, no nonce) are no one's token.
_MADE_FROM_A_NONCE = FeedTokenRow.nonce.is_not(None)
_COLUMNS = (
    FeedTokenRow.couple,
    FeedTokenRow.partner,
    FeedTokenRow.generation,
    FeedTokenRow.nonce,
    FeedTokenRow.token_hash,
)


def _token(row: Row[str, str, int, str | None, str]) -> FeedToken:
    assert row.nonce is not None  # _MADE_FROM_A_NONCE
    return FeedToken(row.couple, row.partner, row.generation, row.nonce, row.token_hash)


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
