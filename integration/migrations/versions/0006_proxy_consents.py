"""proxy consents: the words a resident agreed to when asking staff to run an errand

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-04

Chained to 0004 on the proxy branch; the merge with appointments (0005) re-chains it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0006"
down_revision = "0004"
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


def downgrade() -> None:
    op.drop_table("proxy_consents")
