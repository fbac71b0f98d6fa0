"""Partner states: opted out (STOP) and paused until (PAUSE), checked on every send.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    instant = sa.DateTime(timezone=True)
    op.create_table(
        "partners",
        sa.Column("couple", sa.Text(), nullable=False),
        sa.Column("partner", sa.Text(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("paused_until", instant, nullable=True),
        sa.Column("updated_at", instant, nullable=False),
        sa.PrimaryKeyConstraint("couple", "partner", name=op.f("pk_partners")),
    )


def downgrade() -> None:
    op.drop_table("partners")
