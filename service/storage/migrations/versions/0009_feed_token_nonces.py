"""Feed tokens made from a stored random nonce, so that a rotation really revokes.

Revision ID: 0009
Revises: 0008

``feed_tokens.nonce`` holds 128 random bits drawn when a partner's token is made and on
each rotation; the token is HMAC(secret, "feed", couple, partner, nonce). The tokens of
earlier versions were derived from the secret and a generation counter, so whoever held the
secret could derive every current and future URL: they cannot be kept. Their rows are
deleted, and the next publish makes every partner a new URL (the old ones answer 404 once
the scheduler has republished, which it does when it starts).

The column is nullable, so that an older Hearth still running during the upgrade can go on
writing its rows (without a nonce): the new code never serves such a row, and replaces it
when it next publishes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM feed_tokens"))
    with op.batch_alter_table("feed_tokens") as batch:
        batch.add_column(sa.Column("nonce", sa.Text(), nullable=True))


def downgrade() -> None:
    # Tokens made from a nonce cannot be derived the old way: the URLs change again.
    op.execute(sa.text("DELETE FROM feed_tokens"))
    with op.batch_alter_table("feed_tokens") as batch:
        batch.drop_column("nonce")
