"""volunteer skill note: a volunteer's own words for skills the list has no name for

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("volunteers") as table:
        table.add_column(sa.Column("skill_note", sa.String(100), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("volunteers") as table:
        table.drop_column("skill_note")
