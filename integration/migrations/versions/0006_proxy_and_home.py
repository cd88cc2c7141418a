"""proxy consents and service items: 代办 consent words; help-at-home requests

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Chained to 0004 on the proxy branch; the merge with appointments (0005) re-chains it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "proxy_consents",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "case_id",
            BigId,
            sa.ForeignKey("cases.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("words", sa.Text(), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("case_id", name="uq_proxy_consents_case_id"),
    )
    op.create_table(
        "service_items",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("when", sa.String(128), nullable=False),
        sa.Column("address", sa.String(256), nullable=False),
        sa.Column("whom", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_service_items_status", "service_items", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_service_items_status", table_name="service_items")
    op.drop_table("service_items")
    op.drop_table("proxy_consents")
