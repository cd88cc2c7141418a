"""volunteers: registrations, accounts, codes; service items claimed, done, confirmed

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def _volunteer_fk() -> sa.Column[int]:
    return sa.Column(
        "volunteer_id", BigId, sa.ForeignKey("volunteers.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    with op.batch_alter_table("service_items") as batch:
        batch.add_column(sa.Column("community", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("title", sa.String(128), nullable=False, server_default=""))
        batch.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("starts_at", When, nullable=True))
        batch.add_column(sa.Column("ends_at", When, nullable=True))
        batch.add_column(sa.Column("capacity", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("taken", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("share_phone", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("done_at", When, nullable=True))
        batch.add_column(sa.Column("rating", sa.Integer(), nullable=True))
    op.execute("UPDATE service_items SET status = 'open' WHERE status = 'approved'")
    op.create_table(
        "service_item_skills",
        sa.Column(
            "item_id",
            BigId,
            sa.ForeignKey("service_items.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("skill", sa.String(16), primary_key=True),
    )
    op.create_table(
        "service_item_events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "item_id",
            BigId,
            sa.ForeignKey("service_items.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", When, nullable=False),
    )
    op.create_index("ix_service_item_events_item", "service_item_events", ["item_id", "id"])
    op.create_table(
        "volunteers",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("employer", sa.String(128), nullable=False),
        sa.Column("branch", sa.String(128), nullable=False),
        sa.Column("community", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("decided_at", When, nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=False),
        sa.UniqueConstraint("phone"),
    )
    op.create_index("ix_volunteers_status", "volunteers", ["status", "id"])
    op.create_table(
        "volunteer_skills",
        sa.Column(
            "volunteer_id",
            BigId,
            sa.ForeignKey("volunteers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("skill", sa.String(16), primary_key=True),
    )
    op.create_table(
        "volunteer_slots",
        sa.Column(
            "volunteer_id",
            BigId,
            sa.ForeignKey("volunteers.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("weekday", sa.Integer(), primary_key=True),
        sa.Column("part", sa.String(16), primary_key=True),
    )
    op.create_table(
        "volunteer_accounts",
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("chat_id", sa.String(128), nullable=False),
        _volunteer_fk(),
        sa.Column("linked_at", When, nullable=False),
    )
    op.create_table(
        "volunteer_codes",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("community", sa.String(64), nullable=False),
        sa.Column(
            "volunteer_id",
            BigId,
            sa.ForeignKey("volunteers.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.Column("used_at", When, nullable=True),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "item_claims",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "item_id",
            BigId,
            sa.ForeignKey("service_items.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _volunteer_fk(),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_at", When, nullable=False),
        sa.Column("done_at", When, nullable=True),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("photo", sa.String(512), nullable=False),
        sa.Column("remind_at", When, nullable=True),
        sa.Column("remind_lease", When, nullable=True),
        sa.Column("reminded_at", When, nullable=True),
        sa.UniqueConstraint("item_id", "volunteer_id", name="uq_item_claims_item_volunteer"),
    )
    op.create_index("ix_item_claims_remind", "item_claims", ["reminded_at", "remind_at"])


def downgrade() -> None:
    op.drop_index("ix_item_claims_remind", table_name="item_claims")
    op.drop_table("item_claims")
    op.drop_table("volunteer_codes")
    op.drop_table("volunteer_accounts")
    op.drop_table("volunteer_slots")
    op.drop_table("volunteer_skills")
    op.drop_index("ix_volunteers_status", table_name="volunteers")
    op.drop_table("volunteers")
    op.drop_index("ix_service_item_events_item", table_name="service_item_events")
    op.drop_table("service_item_events")
    op.drop_table("service_item_skills")
    op.execute("UPDATE service_items SET status = 'approved' WHERE status <> 'pending'")
    with op.batch_alter_table("service_items") as batch:
        for column in (
            "rating",
            "done_at",
            "share_phone",
            "taken",
            "capacity",
            "ends_at",
            "starts_at",
            "description",
            "title",
            "community",
        ):
            batch.drop_column(column)
