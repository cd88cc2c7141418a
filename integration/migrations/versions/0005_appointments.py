"""appointments: bookings, the per-slot counts they race for, booking numbers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "appointment_slots",
        sa.Column("window", sa.String(32), primary_key=True),
        sa.Column("starts_at", When, primary_key=True),
        sa.Column("taken", sa.Integer(), nullable=False),
    )
    op.create_table(
        "appointment_counters",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("last", sa.Integer(), nullable=False),
    )
    op.create_table(
        "appointments",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("window", sa.String(32), nullable=False),
        sa.Column("starts_at", When, nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("remind_at", When, nullable=True),
        sa.Column("reminded_at", When, nullable=True),
        sa.Column("remind_lease", When, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.UniqueConstraint("number"),
    )
    op.create_index(
        "ix_appointments_owner", "appointments", ["channel", "user_id", "status", "starts_at"]
    )
    op.create_index("ix_appointments_day", "appointments", ["starts_at", "window"])
    op.create_index(
        "ix_appointments_reminders", "appointments", ["status", "reminded_at", "remind_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_appointments_reminders", table_name="appointments")
    op.drop_index("ix_appointments_day", table_name="appointments")
    op.drop_index("ix_appointments_owner", table_name="appointments")
    op.drop_table("appointments")
    op.drop_table("appointment_counters")
    op.drop_table("appointment_slots")
