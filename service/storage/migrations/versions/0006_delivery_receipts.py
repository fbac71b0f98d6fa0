"""Delivery receipts on sends, their segment counts, and partners whose number is unreachable.

Revision ID: 0006
Revises: 0005

``prompts`` gains what the carrier said last about the text (``delivery_status``,
``delivery_code`` and when, from Twilio's status callbacks) and how many SMS segments it
took. ``partners`` gains the mark of a number that cannot take texts (30005 unknown
number, 30006 landline, …): the error code, when, and a keyed fingerprint of the number
(never the number), so a new number in the couple file lifts the mark. Only adds
nullable columns: an older version still running beside it ignores them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("prompts") as batch:
        batch.add_column(sa.Column("delivery_status", sa.Text(), nullable=True))
        batch.add_column(sa.Column("delivery_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("delivery_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("segments", sa.Integer(), nullable=True))
    with op.batch_alter_table("partners") as batch:
        batch.add_column(sa.Column("unreachable_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("unreachable_number", sa.Text(), nullable=True))
        batch.add_column(sa.Column("unreachable_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("unreachable_at")
        batch.drop_column("unreachable_number")
        batch.drop_column("unreachable_code")
    with op.batch_alter_table("prompts") as batch:
        batch.drop_column("segments")
        batch.drop_column("delivery_at")
        batch.drop_column("delivery_code")
        batch.drop_column("delivery_status")
