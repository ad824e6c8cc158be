"""Crawl sources, runs with their resumable frontier, conditional-GET state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration is a frozen snapshot: it spells out its types instead of importing today's models.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("options", JSON_DOCUMENT, nullable=False),
        sa.Column("provenance", sa.String(16), nullable=False),
        sa.Column("organization", sa.String(500), nullable=True),
        sa.Column("schedule", sa.String(100), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sources"),
    )

    op.create_table(
        "crawl_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("resumed_from_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched", sa.Integer(), nullable=False),
        sa.Column("new", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("errors", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crawl_runs"),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name="fk_crawl_runs_source_id_sources"),
        sa.ForeignKeyConstraint(
            ["resumed_from_id"], ["crawl_runs.id"], name="fk_crawl_runs_resumed_from_id_crawl_runs"
        ),
    )
    op.create_index("ix_crawl_runs_source_id_id", "crawl_runs", ["source_id", "id"])

    op.create_table(
        "crawl_frontier",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("url_key", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crawl_frontier"),
        sa.ForeignKeyConstraint(["run_id"], ["crawl_runs.id"], name="fk_crawl_frontier_run_id_crawl_runs"),
        sa.UniqueConstraint("run_id", "url_key", name="uq_crawl_frontier_run_id_url_key"),
    )
    op.create_index("ix_crawl_frontier_run_id_state_id", "crawl_frontier", ["run_id", "state", "id"])

    op.create_table(
        "fetch_state",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("url_key", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(512), nullable=True),
        sa.Column("last_modified", sa.String(64), nullable=True),
        sa.Column("content_key", sa.String(64), nullable=True),
        sa.Column("record_id", sa.String(128), nullable=True),
        sa.Column("links", JSON_DOCUMENT, nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "url_key", name="pk_fetch_state"),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name="fk_fetch_state_source_id_sources"),
    )
    op.create_index("ix_fetch_state_source_id_content_key", "fetch_state", ["source_id", "content_key"])


def downgrade() -> None:
    op.drop_index("ix_fetch_state_source_id_content_key", table_name="fetch_state")
    op.drop_table("fetch_state")
    op.drop_index("ix_crawl_frontier_run_id_state_id", table_name="crawl_frontier")
    op.drop_table("crawl_frontier")
    op.drop_index("ix_crawl_runs_source_id_id", table_name="crawl_runs")
    op.drop_table("crawl_runs")
    op.drop_table("sources")
