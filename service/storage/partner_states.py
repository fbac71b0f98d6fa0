"""Partner states in SQL: who opted out (STOP) and who paused (PAUSE 3d), read on every send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from service.storage.engine import insert, reading, writing
from service.storage.models import PartnerRow

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["PartnerState", "PartnerStates", "upsert_partner"]


@dataclass(frozen=True, slots=True)
class PartnerState:
    opted_out: bool = False
    paused_until: datetime | None = None

    def paused_at(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until


class PartnerStates:
    """Reads and records partners' opt-outs and pauses; a partner never seen receives texts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, couple: str, partner: str) -> PartnerState:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(PartnerRow.opted_out, PartnerRow.paused_until).where(
                    PartnerRow.couple == couple, PartnerRow.partner == partner
                )
            ).first()
        return PartnerState(row.opted_out, row.paused_until) if row else PartnerState()

    def set_opted_out(self, couple: str, partner: str, opted_out: bool, now: datetime) -> None:
        """STOP (True) or START (False): from now on, texts to this partner stop or resume."""
        self._upsert(couple, partner, now, opted_out=opted_out)

    def pause(self, couple: str, partner: str, until: datetime | None, now: datetime) -> None:
        """No texts to this partner until ``until`` (None: resume now)."""
        if until is not None and until.utcoffset() is None:
            raise ValueError("pause until an aware datetime")
        self._upsert(couple, partner, now, paused_until=until)

    def _upsert(self, couple: str, partner: str, now: datetime, **values: Any) -> None:
        with writing(self.engine) as conn:
            upsert_partner(conn, couple, partner, now, **values)


def upsert_partner(
    conn: Connection, couple: str, partner: str, now: datetime, **values: Any
) -> None:
    """Set ``values`` (``opted_out``, ``paused_until``) on the partner's row, inside ``conn``'s
    transaction; a partner without a row gets one with the defaults for the rest."""
    row = {"couple": couple, "partner": partner, "opted_out": False, "paused_until": None}
    row |= values | {"updated_at": now}
    stmt = insert(conn, PartnerRow).values(row)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[PartnerRow.couple, PartnerRow.partner],
            set_=values | {"updated_at": now},
        )
    )
