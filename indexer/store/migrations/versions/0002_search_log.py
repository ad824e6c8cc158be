"""The search log: query, filters, hit count and latency; never who asked.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration is a frozen snapshot: it spells out its types instead of importing today's models.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "search_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("filters", JSON_DOCUMENT, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("took_ms", sa.Float(), nullable=False),
        sa.Column("relaxed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_search_log"),
    )
    op.create_index("ix_search_log_total_at", "search_log", ["total", "at"])


def downgrade() -> None:
    op.drop_index("ix_search_log_total_at", table_name="search_log")
    op.drop_table("search_log")
