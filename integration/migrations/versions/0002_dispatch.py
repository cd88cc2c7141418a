"""dispatch: outbox, followers, ratings, callback receipts; push kinds; platform ids unique

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("platform_updated_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_cases_category", ["category", "created_at"], unique=False)
        batch_op.create_unique_constraint("uq_cases_platform_id", ["platform", "platform_id"])

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="status")
        )
        batch_op.drop_constraint("uq_notifications_event_chat", type_="unique")
        batch_op.create_unique_constraint(
            "uq_notifications_event_chat_kind", ["event_id", "channel", "chat_id", "kind"]
        )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.alter_column("kind", server_default=None)

    op.create_table(
        "case_followers",
        sa.Column("id", BigId, nullable=False),
        sa.Column("case_id", BigId, nullable=False),
        sa.Column("resident_id", BigId, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["resident_id"], ["residents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "channel", "chat_id", name="uq_case_followers_chat"),
    )
    with op.batch_alter_table("case_followers", schema=None) as batch_op:
        batch_op.create_index("ix_case_followers_resident", ["resident_id"], unique=False)

    op.create_table(
        "dispatch_outbox",
        sa.Column("id", BigId, nullable=False),
        sa.Column("case_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token", sa.String(length=128), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("dispatch_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_dispatch_outbox_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispatch_outbox_case_id"), ["case_id"], unique=False)

    op.create_table(
        "ratings",
        sa.Column("id", BigId, nullable=False),
        sa.Column("case_id", BigId, nullable=False),
        sa.Column("event_id", BigId, nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("score", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("reopened", sa.Boolean(), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["event_id"], ["case_events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ratings_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_ratings_chat", ["channel", "chat_id", "answered_at"], unique=False
        )

    op.create_table(
        "dispatch_receipts",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    with op.batch_alter_table("dispatch_receipts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dispatch_receipts_received_at"), ["received_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("dispatch_receipts")
    op.drop_table("ratings")
    op.drop_table("dispatch_outbox")
    op.drop_table("case_followers")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_constraint("uq_notifications_event_chat_kind", type_="unique")
        batch_op.create_unique_constraint(
            "uq_notifications_event_chat", ["event_id", "channel", "chat_id"]
        )
        batch_op.drop_column("kind")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("uq_cases_platform_id", type_="unique")
        batch_op.drop_index("ix_cases_category")
        batch_op.drop_column("platform_updated_at")
