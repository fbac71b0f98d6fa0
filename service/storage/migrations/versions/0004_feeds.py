"""Feed tokens (hashes only) and ritual versions for calendar feeds.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    instant = sa.DateTime(timezone=True)
    op.create_table(
        "feed_tokens",
        sa.Column("couple", sa.Text(), nullable=False),
        sa.Column("partner", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created_at", instant, nullable=False),
        sa.PrimaryKeyConstraint("couple", "partner", name=op.f("pk_feed_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_feed_tokens_token_hash")),
    )
    op.create_table(
        "ritual_versions",
        sa.Column("couple", sa.Text(), nullable=False),
        sa.Column("ritual", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", instant, nullable=False),
        sa.PrimaryKeyConstraint("couple", "ritual", name=op.f("pk_ritual_versions")),
    )


def downgrade() -> None:
    op.drop_table("ritual_versions")
    op.drop_table("feed_tokens")
