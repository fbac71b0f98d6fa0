"""Sends whose outcome is unknown, and when a released send is to be tried again.

Revision ID: 0005
Revises: 0004

The state's CHECK constraint gains ``unknown`` (the provider may have taken the text, Hearth
could not tell); ``retry_at`` says when a released send comes back (a quiet-hours hold, a
retry), so the reconciler tells a send waiting on purpose from one whose message was lost.
Batch mode, because SQLite alters a constraint only by copying the table. Only adds: an
older version still running beside it ignores the column and never writes ``unknown``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic import op

if TYPE_CHECKING:
    from alembic.operations import BatchOperations

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_BEFORE = ("pending", "sent", "failed", "missed")
_AFTER = (*_BEFORE, "unknown")


def upgrade() -> None:
    with op.batch_alter_table("prompts") as batch:
        batch.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
        _states(batch, _AFTER)


def downgrade() -> None:
    op.execute("UPDATE prompts SET state = 'pending' WHERE state = 'unknown'")
    with op.batch_alter_table("prompts") as batch:
        batch.drop_column("retry_at")
        _states(batch, _BEFORE)


def _states(batch: BatchOperations, states: tuple[str, ...]) -> None:
    listed = ", ".join(f"'{s}'" for s in states)
    batch.drop_constraint(op.f("ck_prompts_state"), type_="check")
    batch.create_check_constraint("state", f"state IN ({listed})")
