"""Re-sealing stored journal text and raw replies under the current key (``hearth rotate-key``).

Every row whose value is not as the current key would store it (plaintext, or sealed under
an old key) is opened and sealed again, in batches of ``batch`` rows, each batch its own
transaction: a run that stops half-way keeps what it did, and running it again finishes the
rest (rows already under the current key are skipped, so it is idempotent). Without a
current key it does the reverse: every sealed value is stored as plaintext again. Each row
is updated only if it still holds the value read, so a concurrent write is never undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, not_, select, update

from service.encryption import PREFIX
from service.storage.engine import reading, writing
from service.storage.models import AnswerRow, ReplyRow

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Engine

    from service.encryption import Cipher, Column

__all__ = ["Rekeyed", "rekey"]


@dataclass(frozen=True, slots=True)
class Rekeyed:
    """How many values were re-sealed, per column."""

    replies: int
    answers: int


def rekey(engine: Engine, cipher: Cipher, batch: int = 500) -> Rekeyed:
    """Store every journal note and raw reply as ``cipher``'s current key would; returns
    how many rows changed. Raises ``SealedUnreadable`` for a value under a key it lacks."""
    return Rekeyed(
        replies=_rekey(engine, cipher, ReplyRow, "replies.raw", batch),
        answers=_rekey(engine, cipher, AnswerRow, "answers.note", batch),
    )


def _rekey(
    engine: Engine,
    cipher: Cipher,
    model: type[ReplyRow] | type[AnswerRow],
    column: Column,
    batch: int,
) -> int:
    value = model.raw if model is ReplyRow else model.note  # type: ignore[union-attr]
    stale: ColumnElement[bool]
    prefix = cipher.current_prefix
    if prefix is None:
        stale = value.startswith(PREFIX, autoescape=True)
    else:
        stale = not_(value.startswith(prefix, autoescape=True))
    changed = 0
    after = 0
    while True:
        with reading(engine) as conn:
            rows = conn.execute(
                select(model.id, value)
                .where(and_(stale, model.id > after))
                .order_by(model.id)
                .limit(batch)
            ).all()
        if not rows:
            return changed
        with writing(engine) as conn:
            for row_id, stored in rows:
                fresh = cipher.seal(cipher.open(stored, column), column)
                done = conn.execute(
                    update(model)
                    .where(model.id == row_id, value == stored)
                    .values({value.key: fresh})
                )
                changed += done.rowcount
        after = rows[-1][0]
