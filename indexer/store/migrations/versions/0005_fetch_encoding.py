"""How each fetched document was decoded: the codec and what chose it (RELIABILITY T15).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("fetch_state") as batch:
        batch.add_column(sa.Column("encoding", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("encoding_source", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fetch_state") as batch:
        batch.drop_column("encoding_source")
        batch.drop_column("encoding")
