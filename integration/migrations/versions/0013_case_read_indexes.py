"""case read indexes: the duplicate check by address or point, a case's latest event

Residents' turns read cases by address or point (the duplicate check) and show each
case's latest note. Without these indexes both read a day's cases or the whole event
history as the tables grow.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_address", "cases", ["address", "category"])
    op.create_index("ix_cases_point", "cases", ["latitude", "longitude"])
    op.drop_index("ix_case_events_case_id", table_name="case_events")
    op.create_index("ix_case_events_case_id", "case_events", ["case_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_case_events_case_id", table_name="case_events")
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])
    op.drop_index("ix_cases_point", table_name="cases")
    op.drop_index("ix_cases_address", table_name="cases")
