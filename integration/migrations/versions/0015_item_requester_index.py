"""item requester index: a resident's own help-at-home requests, for 我的进度

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_service_items_requester", "service_items", ["channel", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_service_items_requester", table_name="service_items")
