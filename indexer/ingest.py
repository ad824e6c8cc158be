"""Ingest: validate → dedupe → record + revision + outbox in one transaction (DESIGN data flow, decision 4).

Indexing happens after the commit, from the outbox (`indexer.outbox.drain`), so a crash between the two
loses nothing: the outbox row is still there for the next drain.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexer.editing import apply_overrides
from indexer.notice_clusters import gather_reports, take_over
from indexer.store import RecordRow, append_revision, enqueue
from schemas import record_to_dict, validate_record

# Fields that change on every fetch without the content changing; they never make a new revision.
VOLATILE_FIELDS = frozenset({"id", "updated_at", "fetched_at"})

Action = Literal["created", "updated", "unchanged"]


class IngestConflict(ValueError):
    """The record collides with another one (e.g. its source id belongs to a different record)."""


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    record_id: str
    revision: int
    action: Action


def canonical_url(url: str | None) -> str | None:
    """Scheme and host lowercased, default port and fragment dropped: one page, one key."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, 80 if parts.scheme == "http" else 443) else None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


def content_fingerprint(record: dict[str, Any]) -> str:
    """Hash of what a reader sees: equal hashes mean a re-import changes nothing and makes no revision."""
    content = {key: value for key, value in record.items() if key not in VOLATILE_FIELDS}
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_record_id(record: dict[str, Any]) -> str:
    """Stable when the record has a natural key, so re-importing the same source item finds the same id."""
    kind = record["kind"]
    natural = None
    if record.get("source") and record.get("external_id"):
        natural = f"{record['source']}\x00{record['external_id']}"
    elif record.get("source") and record.get("url"):
        natural = f"{record['source']}\x00{canonical_url(record['url'])}"
    if natural:
        return f"{kind}-{hashlib.sha256(natural.encode()).hexdigest()[:16]}"
    return f"{kind}-{secrets.token_hex(8)}"


def url_key(url: str | None) -> str | None:
    """The indexed lookup key of a URL (sha256 of its canonical form)."""
    canonical = canonical_url(url)
    return hashlib.sha256(canonical.encode()).hexdigest() if canonical else None


def _find_existing(session: Session, record: dict[str, Any], key: str | None) -> RecordRow | None:
    if record.get("id"):
        if record.get("source") and record.get("external_id"):
            owner = session.scalar(
                select(RecordRow).where(
                    RecordRow.source == record["source"], RecordRow.external_id == record["external_id"]
                )
            )
            if owner is not None and owner.id != record["id"]:
                raise IngestConflict(
                    f"external_id {record['external_id']!r} はすでに別のレコード {owner.id} で使われています"
                )
        return session.get(RecordRow, record["id"])
    source = record.get("source")
    if source and record.get("external_id"):
        return session.scalar(
            select(RecordRow).where(RecordRow.source == source, RecordRow.external_id == record["external_id"])
        )
    if source and key:
        return session.scalar(
            select(RecordRow).where(
                RecordRow.source == source, RecordRow.kind == record["kind"], RecordRow.url_key == key
            )
        )
    return None


def ingest_record(session: Session, data: dict[str, Any], *, author: str, summary: str) -> IngestOutcome:
    """Validate and store one record in the caller's transaction; raises RecordValidationError or IngestConflict."""
    record = record_to_dict(validate_record(data))
    key = url_key(record.get("url"))
    row = _find_existing(session, record, key)
    if row is not None:
        # Editors' corrections win over the source's fields, which are flagged when they change (DESIGN §6).
        record = apply_overrides(session, row.id, record)
    now = datetime.now(UTC)
    record_id = row.id if row is not None else record.get("id") or new_record_id(record)
    # A maker's notice keeps what shops reported of it, and takes over a notice the shops made before it came.
    record, absorbed = gather_reports(session, record_id, record, now)
    if row is not None and content_fingerprint(row.data) == content_fingerprint(record):
        _absorb(session, record_id, absorbed)
        return IngestOutcome(row.id, row.revision, "unchanged")
    if row is None:
        record["id"] = record_id
        # Revision 0 until append_revision below makes the first one.
        row = RecordRow(id=record["id"], created_at=now, revision=0, data=record, content_hash="")
        session.add(row)
        action: Action = "created"
    else:
        record["id"] = row.id
        action = "updated"
    row.kind = record["kind"]
    row.title = record["title"]
    row.status = record["status"]
    row.source = record.get("source")
    row.external_id = record.get("external_id")
    row.url_key = key
    row.updated_at = now
    session.flush()
    _absorb(session, row.id, absorbed)  # the reports' foreign key needs the row
    revision = append_revision(
        session, row.id, record, author=author, summary=summary, first=action == "created"
    )
    enqueue(session, row.id, revision.revision, "upsert" if record["status"] == "published" else "delete")
    return IngestOutcome(row.id, revision.revision, action)


def _absorb(session: Session, record_id: str, absorbed: list[str]) -> None:
    """Move the shops' reports of the absorbed notices onto `record_id` and retract those notices: one recall,
    one notice (indexer.notice_clusters)."""
    if not absorbed:
        return
    take_over(session, record_id, absorbed)
    for old_id in absorbed:
        old = session.get(RecordRow, old_id)
        if old is not None and old.status == "published":
            ingest_record(session, {**old.data, "status": "retracted"}, author="system",
                          summary=f"同じリコールのメーカー公式のお知らせ（{record_id}）にまとめました")
