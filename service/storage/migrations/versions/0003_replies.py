"""Replies (raw inbound texts), partners' answers to occurrences, skipped and moved occurrences.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    instant = sa.DateTime(timezone=True)
    op.create_table(
        "replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_sid", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("received_at", instant, nullable=False),
        sa.Column("couple", sa.Text(), nullable=True),
        sa.Column("partner", sa.Text(), nullable=True),
        sa.Column("verb", sa.Text(), nullable=True),
        sa.Column("occurrence_id", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("confirmation", sa.Text(), nullable=True),
        sa.Column("handled_at", instant, nullable=True),
        sa.Column("confirmed_at", instant, nullable=True),
        sa.Column("provider_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
        sa.UniqueConstraint("message_sid", name=op.f("uq_replies_message_sid")),
        sa.CheckConstraint(
            "state IN ('received', 'handled', 'confirmed')", name=op.f("ck_replies_reply_state")
        ),
    )
    op.create_index(op.f("ix_replies_state"), "replies", ["state"])
    op.create_table(
        "answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reply_sid", sa.Text(), nullable=False),
        sa.Column("couple", sa.Text(), nullable=False),
        sa.Column("ritual", sa.Text(), nullable=False),
        sa.Column("occurrence_id", sa.Text(), nullable=False),
        sa.Column("partner", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("answered_at", instant, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answers")),
        sa.UniqueConstraint("reply_sid", name=op.f("uq_answers_reply_sid")),
    )
    op.create_index(op.f("ix_answers_occurrence_id"), "answers", ["occurrence_id"])
    op.create_table(
        "occurrence_changes",
        sa.Column("occurrence_id", sa.Text(), nullable=False),
        sa.Column("couple", sa.Text(), nullable=False),
        sa.Column("ritual", sa.Text(), nullable=False),
        sa.Column("skipped", sa.Boolean(), nullable=False),
        sa.Column("moved_to", instant, nullable=True),
        sa.Column("by_partner", sa.Text(), nullable=False),
        sa.Column("reply_sid", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", instant, nullable=False),
        sa.PrimaryKeyConstraint("occurrence_id", name=op.f("pk_occurrence_changes")),
    )
    op.create_index(op.f("ix_occurrence_changes_couple"), "occurrence_changes", ["couple"])
    # A reply looks for the texts recently sent to its partner.
    op.create_index(op.f("ix_prompts_partner"), "prompts", ["partner", "couple", "sent_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_prompts_partner"), table_name="prompts")
    op.drop_table("occurrence_changes")
    op.drop_table("answers")
    op.drop_table("replies")
