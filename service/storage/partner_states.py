"""Partner states in SQL: who opted out (STOP), who paused (PAUSE 3d), and whose number
cannot take texts (the carrier said so: 30005, 30006, 21211, 21614); read on every send.

An unreachable number is remembered by a keyed fingerprint (HMAC-SHA256 with the service's
secret), never by the number itself: a send compares the fingerprint of the number the
couple file gives now, so a corrected number lifts the mark without anyone clearing it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from service.storage.engine import insert, reading, writing
from service.storage.models import PartnerRow

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

__all__ = ["PartnerState", "PartnerStates", "Unreachable", "upsert_partner"]


@dataclass(frozen=True, slots=True)
class Unreachable:
    """The carrier refused a number for good: which error said so, and when."""

    code: int
    at: datetime
    number: str  # the number's fingerprint (``PartnerStates.fingerprint``)


@dataclass(frozen=True, slots=True)
class PartnerState:
    opted_out: bool = False
    paused_until: datetime | None = None
    unreachable: Unreachable | None = None

    def paused_at(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until


class PartnerStates:
    """Reads and records partners' opt-outs and pauses; a partner never seen receives texts."""

    def __init__(self, engine: Engine, number_key: bytes = b"hearth") -> None:
        self.engine = engine
        self._number_key = number_key

    def fingerprint(self, number: str) -> str:
        """A keyed fingerprint of a phone number: equal numbers give equal ones."""
        digest = hmac.new(self._number_key, b"unreachable:" + number.encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def get(self, couple: str, partner: str) -> PartnerState:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(
                    PartnerRow.opted_out,
                    PartnerRow.paused_until,
                    PartnerRow.unreachable_code,
                    PartnerRow.unreachable_at,
                    PartnerRow.unreachable_number,
                ).where(PartnerRow.couple == couple, PartnerRow.partner == partner)
            ).first()
        if row is None:
            return PartnerState()
        unreachable = None
        if row.unreachable_code is not None and row.unreachable_number and row.unreachable_at:
            unreachable = Unreachable(
                row.unreachable_code, row.unreachable_at, row.unreachable_number
            )
        return PartnerState(row.opted_out, row.paused_until, unreachable)

    def unreachable(self, state: PartnerState, number: str) -> Unreachable | None:
        """The mark on ``state`` if it is for ``number`` (a new number is not marked)."""
        mark = state.unreachable
        if mark is None or not hmac.compare_digest(mark.number, self.fingerprint(number)):
            return None
        return mark

    def set_unreachable(
        self, couple: str, partner: str, number: str, code: int, now: datetime
    ) -> None:
        """The carrier refused ``number`` for good with ``code``: nothing more goes to it."""
        self._upsert(
            couple,
            partner,
            now,
            unreachable_code=code,
            unreachable_at=now,
            unreachable_number=self.fingerprint(number),
        )

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
