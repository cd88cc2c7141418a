"""media uploads: who sent each kept photo, whether a message used it, orphan sweeping

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "media_uploads",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sweep_until", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("name", name="uq_media_uploads_name"),
    )
    op.create_index(
        "ix_media_uploads_owner", "media_uploads", ["channel", "chat_id", "created_at"]
    )
    op.create_index("ix_media_uploads_orphans", "media_uploads", ["used_at", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_media_uploads_orphans", table_name="media_uploads")
    op.drop_index("ix_media_uploads_owner", table_name="media_uploads")
    op.drop_table("media_uploads")
