"""Editors correct records (DESIGN §6): every change is a revision, and every corrected field an override.

Each function writes ONE transaction — the revision (optimistically locked by `expected_revision`), the per-field
overrides and the outbox row — and then drains the outbox, so the index follows the committed state (T25, T30).
History is never rewritten: a revert, a retraction or a restore is revision n+1.

Overrides are what makes a correction survive a re-crawl: `apply_overrides` (called by ingest) lets the source
update every other field, keeps the editor's value of a corrected one, and flags the override when the source's
value moved away from what it said when the correction was made (`source_changed`, `source_latest`), for an editor
to `resolve_override`.

Library functions only: no Flask. The web layer (search_app/editing.py) checks who may call them and audits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexer.store import (
    OutboxOp,
    RecordOverrideRow,
    RecordRow,
    RevisionRow,
    StaleRevision,
    append_revision,
    enqueue,
)
from indexer.store.models import utcnow
from schemas import JST, FieldError, RecordValidationError, record_to_dict, validate_record

if TYPE_CHECKING:  # the library imports ingest, which imports this module
    from indexer.library import Library

__all__ = [
    "NOT_EDITABLE",
    "EditResult",
    "NoChanges",
    "StaleRevision",
    "apply_overrides",
    "edit_record",
    "mark_verified",
    "resolve_override",
    "restore_record",
    "retract_record",
    "revert_record",
]

# Identity fields: the source's keys for finding the record again on a re-crawl, and the kind that fixes its
# shape. Status changes only through retract/restore, so that each is an explicit, audited act.
NOT_EDITABLE = frozenset({"id", "kind", "source", "external_id", "status"})

SUMMARY_REQUIRED = "変更の要約を入力してください（何を、なぜ直したか）。"
REASON_REQUIRED = "取り下げの理由を入力してください。"
MAX_SUMMARY = 1000

Permitted = Callable[[dict[str, Any]], bool]  # whether the editor may save a record holding this data


class NoChanges(ValueError):
    """The edit would store what the record already says: no revision is made."""

    def __init__(self) -> None:
        super().__init__("変更がありません。内容を直してから保存してください。")


class OutOfScope(PermissionError):
    """The record as the change would leave it is outside the editor's scope (moved to another category or
    organization): refused, so a scoped editor cannot move a record out of their reach or into another's."""


@dataclass(frozen=True, slots=True)
class EditResult:
    record_id: str
    revision: int
    """The record's revision after the call (unchanged when nothing was written, e.g. keeping an override)."""
    changed_fields: tuple[str, ...]
    status: str


# --- shared steps ---------------------------------------------------------------------------------------------


def _summary(summary: str, message: str = SUMMARY_REQUIRED) -> str:
    text = (summary or "").strip()
    if not text:
        raise ValueError(message)
    if len(text) > MAX_SUMMARY:
        raise ValueError(f"要約は {MAX_SUMMARY} 文字以内にしてください。")
    return text


def _locked_record(session: Session, record_id: str, expected_revision: int | None) -> RecordRow:
    """The record, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already holds
    the write lock), checked against the revision the editor read before anything is computed from it."""
    row = session.execute(
        select(RecordRow).where(RecordRow.id == record_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if row is None:
        raise LookupError(f"record {record_id!r} does not exist")
    if expected_revision is not None and expected_revision != row.revision:
        raise StaleRevision(record_id, expected_revision, row.revision)
    return row


def _overrides(session: Session, record_id: str) -> dict[str, RecordOverrideRow]:
    rows = session.scalars(select(RecordOverrideRow).where(RecordOverrideRow.record_id == record_id))
    return {row.field: row for row in rows}


def _write(
    session: Session,
    row: RecordRow,
    new_data: dict[str, Any],
    *,
    editor_id: int | None,
    author: str,
    summary: str,
    permitted: Permitted | None = None,
) -> EditResult:
    """Validate `new_data`, append it as the next revision, record an override per changed field, queue indexing."""
    data = record_to_dict(validate_record(new_data))
    if permitted is not None and not permitted(data):
        raise OutOfScope(row.id)
    old = row.data
    changed = tuple(name for name in data if data.get(name) != old.get(name))
    if not changed:
        raise NoChanges()
    revision = append_revision(session, row.id, data, author=author, summary=summary, expected_revision=row.revision)
    overrides = _overrides(session, row.id)
    now = utcnow()
    for name in changed:
        override = overrides.get(name)
        if override is None:
            session.add(
                RecordOverrideRow(
                    record_id=row.id,
                    field=name,
                    value=data.get(name),
                    source_value=old.get(name),
                    source_changed=False,
                    editor_id=editor_id,
                    revision=revision.revision,
                    created_at=now,
                    updated_at=now,
                )
            )
        elif data.get(name) == override.source_value and not override.source_changed:
            # Back to what the source says: the field follows the source again.
            session.delete(override)
        else:
            # A second correction of the same field: source_value stays what the source said.
            override.value = data.get(name)
            override.editor_id = editor_id
            override.revision = revision.revision
            override.updated_at = now
    # The columns that mirror the data; url_key stays the source's, so a re-crawl still finds the record by it.
    row.title = data["title"]
    row.status = data["status"]
    enqueue(session, row.id, revision.revision, OutboxOp.UPSERT if data["status"] == "published" else OutboxOp.DELETE)
    session.flush()
    return EditResult(row.id, revision.revision, changed, data["status"])


def _run(library: Library, work: Any) -> EditResult:
    with library.store.session() as session:
        result = work(session)
    library.drain()
    return result


# --- editing --------------------------------------------------------------------------------------------------


def edit_record(
    library: Library,
    record_id: str,
    changes: dict[str, Any],
    *,
    editor_id: int | None,
    author: str,
    summary: str,
    expected_revision: int,
    permitted: Permitted | None = None,
) -> EditResult:
    """Apply `changes` (field → new value) on top of revision `expected_revision`; `permitted`, if given, must
    accept the record as it would be saved (OutOfScope otherwise).

    Raises ValueError (empty summary; NoChanges), RecordValidationError (the merged record is invalid, or a change
    names an identity field), StaleRevision (another revision was saved meanwhile) or LookupError (no record).
    """

    def work(session: Session) -> EditResult:
        return edit_in_session(
            session, record_id, changes, editor_id=editor_id, author=author, summary=summary,
            expected_revision=expected_revision, permitted=permitted,
        )  # fmt: skip

    return _run(library, work)


def edit_in_session(
    session: Session,
    record_id: str,
    changes: dict[str, Any],
    *,
    editor_id: int | None,
    author: str,
    summary: str,
    expected_revision: int,
    permitted: Permitted | None = None,
) -> EditResult:
    """edit_record's work in the caller's transaction, for a caller that must commit something with it (accepting
    a suggested edit commits the decision and the revision together). The caller drains the outbox after."""
    text = _summary(summary)
    refused = sorted(set(changes) & NOT_EDITABLE)
    if refused:
        raise RecordValidationError([FieldError(name, "この項目は編集できません") for name in refused])
    row = _locked_record(session, record_id, expected_revision)
    return _write(session, row, {**row.data, **changes}, editor_id=editor_id, author=author, summary=text,
                  permitted=permitted)


def revert_record(
    library: Library,
    record_id: str,
    to_revision: int,
    *,
    editor_id: int | None,
    author: str,
    summary: str = "",
    expected_revision: int | None = None,
    permitted: Permitted | None = None,
) -> EditResult:
    """Revision n+1 holding revision `to_revision`'s content (`permitted` as for edit_record). The status stays as it is now: publishing and
    withdrawing are retract/restore's, so reverting a text cannot republish a retracted record by accident."""

    def work(session: Session) -> EditResult:
        row = _locked_record(session, record_id, expected_revision)
        target = session.scalar(
            select(RevisionRow.data).where(RevisionRow.record_id == record_id, RevisionRow.revision == to_revision)
        )
        if target is None:
            raise LookupError(f"record {record_id!r} has no revision {to_revision}")
        data = {**target, **{name: row.data.get(name) for name in NOT_EDITABLE}}
        text = summary.strip() or f"第{to_revision}版に戻しました"
        return _write(session, row, data, editor_id=editor_id, author=author, summary=_summary(text),
                      permitted=permitted)

    return _run(library, work)


def _set_status(
    library: Library,
    record_id: str,
    status: str,
    *,
    editor_id: int | None,
    author: str,
    summary: str,
    expected_revision: int | None,
) -> EditResult:
    def work(session: Session) -> EditResult:
        row = _locked_record(session, record_id, expected_revision)
        # An override like any correction: a re-crawl must not republish what an editor withdrew.
        return _write(session, row, {**row.data, "status": status}, editor_id=editor_id, author=author, summary=summary)

    return _run(library, work)


def retract_record(
    library: Library,
    record_id: str,
    *,
    editor_id: int | None,
    author: str,
    summary: str,
    expected_revision: int | None = None,
) -> EditResult:
    """Withdraw a record: a revision with status "retracted", and an outbox DELETE that takes it out of the index."""
    text = _summary(summary, REASON_REQUIRED)
    return _set_status(
        library, record_id, "retracted", editor_id=editor_id, author=author, summary=text,
        expected_revision=expected_revision,
    )


def restore_record(
    library: Library,
    record_id: str,
    *,
    editor_id: int | None,
    author: str,
    summary: str = "",
    expected_revision: int | None = None,
) -> EditResult:
    """Publish a retracted (or expired, or pending) record again: a revision and an outbox UPSERT."""
    text = _summary(summary.strip() or "公開に戻しました")
    return _set_status(
        library, record_id, "published", editor_id=editor_id, author=author, summary=text,
        expected_revision=expected_revision,
    )


def mark_verified(
    library: Library,
    record_id: str,
    *,
    editor_id: int | None,
    author: str,
    verified_at: datetime | None = None,
    summary: str = "",
    expected_revision: int | None = None,
) -> EditResult:
    """Record that an editor confirmed the content (the schema's `verified_at`), as a revision. Verifying twice on
    the same instant is NoChanges; on another day it is a new revision with the new date."""
    when = (verified_at or utcnow()).astimezone(JST)
    text = _summary(summary.strip() or f"内容を確認しました（{when:%Y-%m-%d}）")

    def work(session: Session) -> EditResult:
        row = _locked_record(session, record_id, expected_revision)
        data = {**row.data, "verified_at": when.isoformat()}
        return _write(session, row, data, editor_id=editor_id, author=author, summary=text)

    return _run(library, work)


def resolve_override(
    library: Library,
    record_id: str,
    field: str,
    keep: bool,
    *,
    editor_id: int | None,
    author: str,
    summary: str = "",
    expected_revision: int | None = None,
) -> EditResult:
    """Settle "the source changed after this correction".

    keep=True: the correction stands; the source's new value becomes the one later crawls are compared with, and
    no revision is made (the record does not change). keep=False: the source's new value replaces the correction
    as a new revision, and the field follows the source again.
    """

    def work(session: Session) -> EditResult:
        row = _locked_record(session, record_id, expected_revision)
        override = session.get(RecordOverrideRow, (record_id, field), populate_existing=True)
        if override is None or not override.source_changed:
            raise LookupError(f"record {record_id!r}: no changed source for field {field!r}")
        latest = override.source_latest
        if keep:
            override.source_value = latest
            override.source_latest = None
            override.source_changed = False
            override.editor_id = editor_id
            override.updated_at = utcnow()
            return EditResult(row.id, row.revision, (), row.status)
        text = _summary(summary.strip() or "出典の新しい内容を採用しました")
        data = {**row.data, field: latest}
        if data == row.data:
            result = EditResult(row.id, row.revision, (), row.status)
        else:
            result = _write(session, row, data, editor_id=editor_id, author=author, summary=text)
        # The field follows the source again: no override is kept for it.
        session.delete(override)
        return result

    return _run(library, work)


# --- re-ingest (called by indexer.ingest) ----------------------------------------------------------------------


def apply_overrides(session: Session, record_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The source's new version of a record with every corrected field kept as the editor set it (DESIGN §6).

    An override whose source value moved away from `source_value` is flagged `source_changed` with the new value
    in `source_latest`; one whose source came back to `source_value` is unflagged. Returns `record` itself when
    the record has no overrides (the common case costs one indexed query).
    """
    overrides = _overrides(session, record_id)
    if not overrides:
        return record
    merged = dict(record)
    now = utcnow()
    for name, override in overrides.items():
        incoming = record.get(name)
        if incoming == override.value:
            # Nothing new from the source: it agrees with the correction, or a writer that derives its data from
            # the record (the notice clustering, expiry) echoes the record back.
            pass
        elif incoming != override.source_value:
            if not override.source_changed or override.source_latest != incoming:
                override.source_changed = True
                override.source_latest = incoming
                override.updated_at = now
        elif override.source_changed:
            override.source_changed = False
            override.source_latest = None
            override.updated_at = now
        merged[name] = override.value
    # Corrected and source fields together must still make a valid record (e.g. ends_at after starts_at).
    return record_to_dict(validate_record(merged))
