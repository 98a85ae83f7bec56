"""note previews

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 18:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import plugin.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The chart a launch's latest preview was built on, sealed; it goes with its launch (CASCADE).
    op.create_table(
        "note_previews",
        sa.Column("launch_id", sa.String(length=36), nullable=False),
        sa.Column("submit_key", sa.String(length=36), nullable=False),
        sa.Column("chart_enc", sa.Text(), nullable=False),
        sa.Column("stored_at", plugin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", plugin.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["launch_id"], ["launches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("launch_id"),
    )
    with op.batch_alter_table("note_previews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_note_previews_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("note_previews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_note_previews_expires_at"))

    op.drop_table("note_previews")
