"""handoff: conversations handed to a person, and staff members' linked chats

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "handoffs",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(256), nullable=False, server_default=""),
        sa.Column("opened_at", When, nullable=False),
        sa.Column("promised_at", When, nullable=True),
        sa.Column("sla_due", When, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("claimed_at", When, nullable=True),
        sa.Column("closed_at", When, nullable=True),
        sa.Column("closed_how", sa.String(16), nullable=False, server_default=""),
        sa.Column("last_message_at", When, nullable=True),
        sa.Column("alarmed_at", When, nullable=True),
        sa.Column("alarm_lease", When, nullable=True),
    )
    op.create_index("ix_handoffs_chat", "handoffs", ["channel", "chat_id", "status"])
    op.create_index("ix_handoffs_alarm", "handoffs", ["status", "alarmed_at", "sla_due"])
    op.create_table(
        "staff_chats",
        sa.Column("staff", sa.String(64), primary_key=True),
        sa.Column("channel", sa.String(32), nullable=False, server_default=""),
        sa.Column("chat_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("code", sa.String(16), nullable=False, server_default=""),
        sa.Column("code_expires", When, nullable=True),
        sa.Column("on_duty", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_table("staff_chats")
    op.drop_index("ix_handoffs_alarm", "handoffs")
    op.drop_index("ix_handoffs_chat", "handoffs")
    op.drop_table("handoffs")
