"""launch purge index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 21:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Ended launches keep their rows without their tokens (tokens_enc = ''); the purge reads only the
    # rows that still hold tokens, through this partial index (SQLite and PostgreSQL both have them).
    with op.batch_alter_table("launches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_launches_with_tokens",
            ["expires_at"],
            unique=False,
            sqlite_where=sa.text("tokens_enc <> ''"),
            postgresql_where=sa.text("tokens_enc <> ''"),
        )


def downgrade() -> None:
    with op.batch_alter_table("launches", schema=None) as batch_op:
        batch_op.drop_index("ix_launches_with_tokens")
