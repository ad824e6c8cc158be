"""Records by kind and status in one index, instead of kind alone.

Notices are looked up by kind and status (the pinned urgent notices, a shop report's cluster). SQLite keeps no
statistics, so with one index per column it took the status index and read every published record: 0.25 s per
lookup at 100,000 records, in the web process, once per pushed notice per worker. The new index also serves
lookups by kind alone, so ix_records_kind goes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_records_kind_status", "records", ["kind", "status"])
    op.drop_index("ix_records_kind", table_name="records")


def downgrade() -> None:
    op.create_index("ix_records_kind", "records", ["kind"])
    op.drop_index("ix_records_kind_status", table_name="records")
