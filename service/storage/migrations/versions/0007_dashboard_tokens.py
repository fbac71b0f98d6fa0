"""Dashboard tokens: per partner, the hash of the token and the random nonce it came from.

Revision ID: 0007
Revises: 0006

Only adds a table: an older version still running beside it ignores it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "dashboard_tokens",
        sa.Column("couple", sa.Text(), nullable=False),
        sa.Column("partner", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("couple", "partner", name=op.f("pk_dashboard_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_dashboard_tokens_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("dashboard_tokens")
