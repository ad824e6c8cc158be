"""Records, append-only revisions, outbox, engine state.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration is a frozen snapshot: it spells out its types instead of importing today's models.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# The triggers stop application code, and mistakes at a SQL prompt, from rewriting history (T30). A database
# owner can still drop them; the revisions' hash chain is what detects that.
SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER revisions_no_update BEFORE UPDATE ON revisions
    BEGIN SELECT RAISE(ABORT, 'revisions are append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER revisions_no_delete BEFORE DELETE ON revisions
    BEGIN SELECT RAISE(ABORT, 'revisions are append-only: DELETE refused'); END
    """,
]
POSTGRES_TRIGGERS = [
    # restrict_violation is an integrity error (class 23), as SQLite's RAISE(ABORT) in a trigger is.
    """
    CREATE FUNCTION revisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING
            MESSAGE = 'revisions are append-only: ' || TG_OP || ' refused',
            ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER revisions_append_only BEFORE UPDATE OR DELETE ON revisions
    FOR EACH ROW EXECUTE FUNCTION revisions_append_only()
    """,
    """
    CREATE TRIGGER revisions_no_truncate BEFORE TRUNCATE ON revisions
    FOR EACH STATEMENT EXECUTE FUNCTION revisions_append_only()
    """,
]


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(128), nullable=True),
        sa.Column("external_id", sa.String(512), nullable=True),
        sa.Column("url_key", sa.String(64), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("data", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_records"),
        sa.UniqueConstraint("source", "external_id", name="uq_records_source_external_id"),
    )
    op.create_index("ix_records_kind", "records", ["kind"])
    op.create_index("ix_records_status", "records", ["status"])
    op.create_index("ix_records_url_key", "records", ["url_key"])

    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("data", JSON_DOCUMENT, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revisions"),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], name="fk_revisions_record_id_records"),
        sa.UniqueConstraint("record_id", "revision", name="uq_revisions_record_id_revision"),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_record_id", "outbox", ["record_id"])
    op.create_index("ix_outbox_processed_at_id", "outbox", ["processed_at", "id"])

    op.create_table(
        "engine_state",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_engine_state"),
    )

    for statement in SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER revisions_no_delete")
        op.execute("DROP TRIGGER revisions_no_update")
    else:
        op.execute("DROP TRIGGER revisions_no_truncate ON revisions")
        op.execute("DROP TRIGGER revisions_append_only ON revisions")
        op.execute("DROP FUNCTION revisions_append_only()")
    op.drop_table("engine_state")
    op.drop_table("outbox")
    op.drop_table("revisions")
    op.drop_table("records")
