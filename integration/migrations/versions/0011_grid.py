"""grid: grid workers' grid ids on their accounts, and the grid a case was filed in

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "staff_accounts", sa.Column("grid", sa.String(32), nullable=False, server_default="")
    )
    op.add_column("cases", sa.Column("grid", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("grid")
    with op.batch_alter_table("staff_accounts") as batch:
        batch.drop_column("grid")
