"""Accounts, server-side sessions, audit log, shops and API keys, notice reports, overrides, contributions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A migration is a frozen snapshot: it spells out its types instead of importing today's models.
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_INSTANT = sa.DateTime(timezone=True)

# The audit log, like the revisions, is evidence: application code may only append to it (T30).
SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END
    """,
]
POSTGRES_TRIGGERS = [
    """
    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION USING
            MESSAGE = 'audit_log is append-only: ' || TG_OP || ' refused',
            ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """,
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """,
]


def upgrade() -> None:
    op.create_table(
        "shops",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shops"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("scope_categories", JSON_DOCUMENT, nullable=False),
        sa.Column("scope_organizations", JSON_DOCUMENT, nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTC_INSTANT, nullable=True),
        sa.Column("invite_hash", sa.String(64), nullable=True),
        sa.Column("invite_expires_at", UTC_INSTANT, nullable=True),
        sa.Column("created_at", UTC_INSTANT, nullable=False),
        sa.Column("password_changed_at", UTC_INSTANT, nullable=True),
        sa.Column("last_login_at", UTC_INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name="fk_users_shop_id_shops"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.UniqueConstraint("invite_hash", name="uq_users_invite_hash"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("data", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", UTC_INSTANT, nullable=False),
        sa.Column("last_seen_at", UTC_INSTANT, nullable=False),
        sa.Column("expires_at", UTC_INSTANT, nullable=False),
        sa.Column("revoked_at", UTC_INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("id_hash", name="pk_web_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_web_sessions_user_id_users"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTC_INSTANT, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", JSON_DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("scopes", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", UTC_INSTANT, nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("revoked_at", UTC_INSTANT, nullable=True),
        sa.Column("last_used_at", UTC_INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name="fk_api_keys_shop_id_shops"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name="fk_api_keys_created_by_users"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_shop_id", "api_keys", ["shop_id"])
    op.create_table(
        "notice_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shop_id", sa.Integer(), nullable=True),
        sa.Column("shop_notice_id", sa.String(200), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("cluster_key", sa.String(64), nullable=False),
        sa.Column("payload", JSON_DOCUMENT, nullable=False),
        sa.Column("created_at", UTC_INSTANT, nullable=False),
        sa.Column("updated_at", UTC_INSTANT, nullable=False),
        sa.Column("retracted_at", UTC_INSTANT, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notice_reports"),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name="fk_notice_reports_shop_id_shops"),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], name="fk_notice_reports_record_id_records"),
        sa.UniqueConstraint("shop_id", "shop_notice_id", name="uq_notice_reports_shop_id_shop_notice_id"),
    )
    op.create_index("ix_notice_reports_record_id", "notice_reports", ["record_id"])
    op.create_index("ix_notice_reports_cluster_key", "notice_reports", ["cluster_key"])
    op.create_table(
        "record_overrides",
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("value", JSON_DOCUMENT, nullable=True),
        sa.Column("source_value", JSON_DOCUMENT, nullable=True),
        sa.Column("source_latest", JSON_DOCUMENT, nullable=True),
        sa.Column("source_changed", sa.Boolean(), nullable=False),
        sa.Column("editor_id", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC_INSTANT, nullable=False),
        sa.Column("updated_at", UTC_INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("record_id", "field", name="pk_record_overrides"),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], name="fk_record_overrides_record_id_records"),
        sa.ForeignKeyConstraint(["editor_id"], ["users.id"], name="fk_record_overrides_editor_id_users"),
    )
    op.create_table(
        "contributions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contributor_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", JSON_DOCUMENT, nullable=False),
        sa.Column("base_revision", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTC_INSTANT, nullable=True),
        sa.Column("resulting_revision", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contributions"),
        sa.ForeignKeyConstraint(["contributor_id"], ["users.id"], name="fk_contributions_contributor_id_users"),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], name="fk_contributions_record_id_records"),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"], name="fk_contributions_decided_by_users"),
    )
    op.create_index("ix_contributions_contributor_id", "contributions", ["contributor_id"])
    op.create_index("ix_contributions_status_id", "contributions", ["status", "id"])

    for statement in SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else POSTGRES_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_log_no_delete")
        op.execute("DROP TRIGGER audit_log_no_update")
    else:
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION audit_log_append_only()")
    for table in (
        "contributions",
        "record_overrides",
        "notice_reports",
        "api_keys",
        "audit_log",
        "web_sessions",
        "users",
        "shops",
    ):
        op.drop_table(table)
