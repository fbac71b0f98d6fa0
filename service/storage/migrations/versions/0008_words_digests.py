"""The digest of the words each send handed the provider.

Revision ID: 0008
Revises: 0007

``prompts.words_digest`` is ``words_digest(event_id, body)`` of the text at its last attempt:
an unknown send is looked up at the provider by the words it was sent with, which may
differ from the words it would have now (a summary that counts one more day). A digest,
never the body. Only adds a nullable column: an older version still running beside it
ignores it, and a row without one is matched on its current words, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("prompts") as batch:
        batch.add_column(sa.Column("words_digest", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prompts") as batch:
        batch.drop_column("words_digest")
