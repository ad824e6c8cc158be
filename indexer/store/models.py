"""Tables of the system of record (DESIGN §1, §4, §6) and the helpers that keep their invariants.

Records hold the current state; revisions are the append-only, hash-chained history (T30); the outbox holds
"index this revision" work, written in the same transaction as the change and drained after commit (T25).
Portable between SQLite and PostgreSQL: JSON (JSONB on PostgreSQL), and UTC instants that read back aware.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

# Deterministic constraint and index names, the same on both backends, so migrations can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSON_DOCUMENT = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An instant, stored as UTC and always read back timezone-aware.

    PostgreSQL's timestamptz keeps the instant; SQLite keeps only the wall-clock text, so values are converted
    to UTC before they are written and marked UTC when read. Naive datetimes are refused: their zone would be
    a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RecordRow(Base):
    """A record's current state; `data`, `content_hash` and `revision` are set by `append_revision`.

    Their defaults only let a new row be inserted ahead of its first revision, in the same transaction (the
    revision's foreign key needs the row); `append_revision` then sets them, so a committed record has
    revision >= 1. Records are never deleted: retraction is a status.
    """

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # Notices are looked up by kind and status (pinned notices, report clusters). With one index per column,
        # SQLite, which keeps no statistics, took status and read every published record: 0.25 s at 100k.
        Index("ix_records_kind_status", "kind", "status"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str | None] = mapped_column(String(128))
    external_id: Mapped[str | None] = mapped_column(String(512))
    # sha256 of the canonical URL: fixed width, so any URL length fits a B-tree index on every backend.
    url_key: Mapped[str | None] = mapped_column(String(64), index=True)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    revision: Mapped[int] = mapped_column(default=0)
    data: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RevisionRow(Base):
    """One immutable snapshot of a record: who, why, when, and a hash chained to the previous one (T30).

    Database triggers refuse UPDATE and DELETE (migration 0001). The index of the unique (record_id, revision)
    constraint also serves lookups by record_id, so there is no separate index on it.
    """

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("record_id", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(128), ForeignKey("records.id"))
    revision: Mapped[int]
    data: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT)
    content_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(128))
    summary: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxOp(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class OutboxRow(Base):
    """Index work for one revision: committed with the change, marked done after indexing (DESIGN §4)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_processed_at_id", "processed_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(128), index=True)
    revision: Mapped[int]
    op: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EngineStateRow(Base):
    """Small facts about the search engines, such as when the last full reindex finished."""

    __tablename__ = "engine_state"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON_DOCUMENT)


# --- revisions -------------------------------------------------------------------------------------------


class StaleRevision(Exception):
    """An edit was based on a revision that is no longer current (optimistic locking, DESIGN §6)."""

    def __init__(self, record_id: str, expected: int, current: int) -> None:
        super().__init__(f"record {record_id!r}: edit based on revision {expected}, but {current} is current")
        self.record_id = record_id
        self.expected = expected
        self.current = current


def _numbers_by_value(value: Any) -> Any:
    # PostgreSQL's JSONB keeps numbers as decimals, not as Python spelled them: 1e+20 reads back as the
    # integer 100000000000000000000, and -0.0 as 0.0. Hashing integral floats as integers makes the hash of
    # what is read back equal the hash of what was written, on both backends.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _numbers_by_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_numbers_by_value(item) for item in value]
    return value


def canonical_json(data: Any) -> str:
    """The text that is hashed: sorted keys, no spaces, text as is; NaN and infinities are refused."""
    return json.dumps(
        _numbers_by_value(data), ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )


def content_hash_of(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def chain_hash_of(previous: str, content_hash: str, author: str, created_at: datetime) -> str:
    """sha256(previous chain hash + content hash + author + created_at); revision 1's previous is ""."""
    # A fixed-width timestamp (UTC, microseconds), so the author/timestamp boundary is unambiguous.
    stamp = created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return hashlib.sha256(f"{previous}{content_hash}{author}{stamp}".encode()).hexdigest()


def append_revision(
    session: Session,
    record_id: str,
    data: dict[str, Any],
    author: str,
    summary: str,
    *,
    expected_revision: int | None = None,
    first: bool = False,
) -> RevisionRow:
    """Append revision max+1 of a record and make it the record's current data.

    The record row must exist (in the database, or added to this session). It is locked first (FOR UPDATE on
    PostgreSQL; on SQLite the BEGIN IMMEDIATE write transaction already serializes writers), so concurrent
    appends queue instead of colliding on the revision number. With `expected_revision`, an edit based on any
    other revision than the current one raises StaleRevision and writes nothing.
    """
    if first:
        # Created in this very transaction: invisible to everyone else, so no lock and no history to read.
        record = session.get(RecordRow, record_id)
        last = None
    else:
        record = session.execute(
            select(RecordRow)
            .where(RecordRow.id == record_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        last = session.execute(
            select(RevisionRow.revision, RevisionRow.chain_hash)
            .where(RevisionRow.record_id == record_id)
            .order_by(RevisionRow.revision.desc())
            .limit(1)
        ).one_or_none()
    if record is None:
        raise LookupError(f"record {record_id!r} does not exist")
    current = last.revision if last else 0
    if expected_revision is not None and expected_revision != current:
        raise StaleRevision(record_id, expected_revision, current)

    created_at = utcnow()
    content_hash = content_hash_of(data)
    revision = RevisionRow(
        record_id=record_id,
        revision=current + 1,
        data=data,
        content_hash=content_hash,
        chain_hash=chain_hash_of(last.chain_hash if last else "", content_hash, author, created_at),
        author=author,
        summary=summary,
        created_at=created_at,
    )
    session.add(revision)
    record.data = data
    record.content_hash = content_hash
    record.revision = revision.revision
    record.updated_at = created_at
    session.flush()
    return revision


def verify_chain(session: Session, record_id: str) -> bool:
    """True when the record's history is intact: revisions 1..n without gaps, each content hash matching its
    data, each chain hash matching its predecessor, and the record's current state equal to revision n."""
    # Columns rather than entities, so that objects in the session's identity map cannot mask the database.
    record = session.execute(
        select(RecordRow.revision, RecordRow.content_hash, RecordRow.data).where(RecordRow.id == record_id)
    ).one_or_none()
    if record is None:
        return False
    revisions = session.execute(
        select(
            RevisionRow.revision,
            RevisionRow.data,
            RevisionRow.content_hash,
            RevisionRow.chain_hash,
            RevisionRow.author,
            RevisionRow.created_at,
        )
        .where(RevisionRow.record_id == record_id)
        .order_by(RevisionRow.revision)
    ).all()
    previous = ""
    for number, revision in enumerate(revisions, start=1):
        content_intact = revision.content_hash == content_hash_of(revision.data)
        chained = chain_hash_of(previous, revision.content_hash, revision.author, revision.created_at)
        if revision.revision != number or not content_intact or revision.chain_hash != chained:
            return False
        previous = revision.chain_hash
    return (
        bool(revisions)
        and record.revision == len(revisions)
        and record.content_hash == revisions[-1].content_hash == content_hash_of(record.data)
    )


# --- outbox ----------------------------------------------------------------------------------------------


MAX_OUTBOX_ATTEMPTS = 3


def dead_letter_count(session: Session, *, max_attempts: int = MAX_OUTBOX_ATTEMPTS) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.processed_at.is_(None), OutboxRow.attempts >= max_attempts)
        )
        or 0
    )


def enqueue(session: Session, record_id: str, revision: int, op: OutboxOp | str) -> OutboxRow:
    """Queue index work in the caller's transaction: it commits, or rolls back, with the change itself."""
    row = OutboxRow(record_id=record_id, revision=revision, op=OutboxOp(op).value)
    session.add(row)
    return row


def claim_batch(session: Session, limit: int, *, max_attempts: int = MAX_OUTBOX_ATTEMPTS) -> list[OutboxRow]:
    """The oldest unprocessed rows, held by this session's transaction until it ends.

    A row that failed `max_attempts` times is dead-lettered: left unprocessed with its last error, never claimed
    again, so one poison row cannot stall the queue (T26).

    PostgreSQL locks them FOR UPDATE SKIP LOCKED, so concurrent workers take disjoint batches. SQLite has no
    row locks; its BEGIN IMMEDIATE write transaction makes a second worker wait until the first one ends.
    """
    return list(
        session.scalars(
            select(OutboxRow)
            .where(OutboxRow.processed_at.is_(None), OutboxRow.attempts < max_attempts)
            .order_by(OutboxRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )


def mark_done(session: Session, ids: Iterable[int]) -> None:
    """Mark rows processed. A row already marked keeps its first processed_at: a duplicate is harmless."""
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_(list(ids)), OutboxRow.processed_at.is_(None))
        .values(processed_at=utcnow())
    )


def mark_failed(session: Session, row_id: int, error: str) -> None:
    """Count a failed attempt; the row stays unprocessed and is claimed again by a later batch."""
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id)
        .values(attempts=OutboxRow.attempts + 1, last_error=error)
    )


def pending_count(session: Session) -> int:
    unprocessed = select(func.count()).select_from(OutboxRow).where(OutboxRow.processed_at.is_(None))
    return session.execute(unprocessed).scalar_one()


def published_count(session: Session) -> int:
    """Records the public index should hold: the figure every index count is checked against."""
    return session.scalar(select(func.count()).select_from(RecordRow).where(RecordRow.status == "published")) or 0
