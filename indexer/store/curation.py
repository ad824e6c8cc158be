"""Tables of the social side (issue 5): accounts and their server-side sessions, the audit log, shops and their API
keys, shop notice reports, editors' per-field overrides and citizens' contributions.

Secrets are never stored: passwords as argon2id hashes, session ids and API keys as SHA-256 digests of high-entropy
random values (a digest is enough for a random key, and it lets a lookup use the index). The audit log is
append-only like the revisions (migration 0004's triggers).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import JSON_DOCUMENT, Base, UTCDateTime, utcnow


class Role(StrEnum):
    CITIZEN = "citizen"
    EDITOR = "editor"
    SHOP = "shop"
    ADMIN = "admin"


class UserRow(Base):
    """An account. Editors may be scoped to categories and/or organizations (empty lists: unscoped)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # Stored NFKC-folded and lower-cased, so ＵＳＥＲ@example.jp and user@example.jp are one account.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(Text)  # None until an invited user sets one
    role: Mapped[str] = mapped_column(String(16))
    scope_categories: Mapped[list[str]] = mapped_column(JSON_DOCUMENT, default=list)
    scope_organizations: Mapped[list[str]] = mapped_column(JSON_DOCUMENT, default=list)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # sha256 of a single-use invitation / password-reset token, and when it stops working.
    invite_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebSessionRow(Base):
    """A browser session, kept server-side so that logout, a password change or an admin revoke ends it (T19).

    The cookie holds a random id; the table holds only its SHA-256. Anonymous sessions (a login form's CSRF
    token) have no user.
    """

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user_id", "user_id"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditOutcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


class AuditRow(Base):
    """Who did what to what, when (UTC), and whether it was allowed (T30, ASVS 16.x). Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))  # "user:12", "shop-key:3", "anonymous", "system"
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512), default="")
    outcome: Mapped[str] = mapped_column(String(16), default=AuditOutcome.OK.value)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, default=dict)


class ShopRow(Base):
    """A participating shop: it pushes urgent notices through its API keys or its staff's form."""

    __tablename__ = "shops"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKeyRow(Base):
    """A shop's bearer key: SHA-256 of 32 random bytes, shown once; revocable (T21, T23)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so a key can be told apart, never enough to use
    label: Mapped[str] = mapped_column(String(200), default="")
    scopes: Mapped[list[str]] = mapped_column(JSON_DOCUMENT, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class NoticeReportRow(Base):
    """One shop's (or source's) report of an urgent notice. Several reports of one recall share a cluster key and
    point at one notice record ("also reported by"). Unique per (shop, the shop's own notice id): a retried
    POST finds its earlier report instead of making a duplicate."""

    __tablename__ = "notice_reports"
    __table_args__ = (UniqueConstraint("shop_id", "shop_notice_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id"))
    shop_notice_id: Mapped[str] = mapped_column(String(200))
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), index=True)
    cluster_key: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retracted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RecordOverrideRow(Base):
    """An editor's correction of one field (DESIGN §6). A re-crawl keeps `value` in the record and, when the source's
    value differs from `source_value` (what the source said when the correction was made), sets `source_changed`
    and keeps the source's new value in `source_latest` for an editor to resolve."""

    __tablename__ = "record_overrides"

    record_id: Mapped[str] = mapped_column(ForeignKey("records.id"), primary_key=True)
    field: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON_DOCUMENT, nullable=True)
    source_value: Mapped[Any] = mapped_column(JSON_DOCUMENT, nullable=True)
    source_latest: Mapped[Any] = mapped_column(JSON_DOCUMENT, nullable=True)
    source_changed: Mapped[bool] = mapped_column(Boolean, default=False)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ContributionStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ContributionRow(Base):
    """A citizen's new record (record_id None) or suggested edit of a record, waiting for an editor. Nothing here
    is searchable: only an accepted contribution becomes a revision, and so an outbox row."""

    __tablename__ = "contributions"
    __table_args__ = (Index("ix_contributions_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    contributor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    record_id: Mapped[str | None] = mapped_column(ForeignKey("records.id"))
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, default=dict)
    base_revision: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=ContributionStatus.PENDING.value)
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resulting_revision: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
