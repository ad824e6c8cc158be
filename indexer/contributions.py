"""Citizens' contributions (issue 5): new records and suggested edits that wait for an editor.

A contribution lives only in the `contributions` table until an editor accepts it, so nothing pending is ever
searchable: a new record is ingested (record + revision + outbox in the same transaction as the decision), a
suggested edit goes through `indexer.editing.edit_record` (a revision with per-field overrides, DESIGN §6).

Every decision is a conditional UPDATE from `pending`, so two editors deciding at once cannot both win: the
second one's UPDATE matches no row and gets `AlreadyDecided`. Who may decide what (editors' scopes) is the web
layer's business; this module trusts the ids it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from indexer.ingest import ingest_record
from indexer.store import ContributionRow, ContributionStatus, RecordRow, RevisionRow, Store, UserRow
from indexer.store.models import utcnow
from schemas import FieldError, RecordValidationError, record_to_dict, validate_record

PENDING = ContributionStatus.PENDING.value
# Kinds a citizen may propose; crawled web pages only ever come from the crawler.
CONTRIBUTABLE_KINDS = ("notice", "product", "program", "facility", "contribution", "shop", "campaign", "faq")
# Set by the library, never by a contributor: identity, origin, publication state, verification.
LOCKED_FIELDS = frozenset(
    {"id", "kind", "source", "external_id", "provenance", "status", "verified_at", "updated_at", "fetched_at"}
)
# With external_id = the contribution's id, so a record made from a contribution is found again, never doubled.
CONTRIBUTION_SOURCE = "contribution"
MAX_REASON = 2000
MAX_NOTE = 2000


class ContributionError(Exception):
    """Base of this module's refusals; the message is Japanese and may be shown as is."""


class ContributionNotFound(ContributionError):
    def __init__(self) -> None:
        super().__init__("この投稿は見つかりません。")


class AlreadyDecided(ContributionError):
    def __init__(self, status: str) -> None:
        super().__init__("この投稿はすでに処理されています。")
        self.status = status


class NothingChanged(ContributionError):
    def __init__(self) -> None:
        super().__init__("変更された項目がありません。直したい項目を書き換えてから送ってください。")


class ReasonRequired(ContributionError):
    def __init__(self) -> None:
        super().__init__(
            f"見送る理由を {MAX_REASON} 文字以内で入力してください（投稿した人に表示されます）。"
        )


class RecordChanged(ContributionError):
    """The record has a newer revision than the one the editor reviewed: review the difference again."""

    def __init__(self, current_revision: int) -> None:
        super().__init__(
            "確認している間に記録が更新されました。最新の内容との違いを確かめてから、もう一度承認してください。"
        )
        self.current_revision = current_revision


@dataclass(frozen=True, slots=True)
class Contribution:
    id: int
    contributor_id: int
    record_id: str | None
    kind: str
    data: dict[str, Any]
    """A new record: the whole validated record. A suggested edit: only the changed fields."""
    base_revision: int | None
    note: str
    status: str
    reason: str
    decided_by: int | None
    decided_at: datetime | None
    resulting_revision: int | None
    created_at: datetime

    @property
    def is_edit(self) -> bool:
        return self.base_revision is not None

    @classmethod
    def of(cls, row: ContributionRow) -> Contribution:
        return cls(
            id=row.id,
            contributor_id=row.contributor_id,
            record_id=row.record_id,
            kind=row.kind,
            data=dict(row.data or {}),
            base_revision=row.base_revision,
            note=row.note or "",
            status=row.status,
            reason=row.reason or "",
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            resulting_revision=row.resulting_revision,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class Review:
    """What an editor needs to decide on a suggested edit: the record as the contributor saw it, as it is now,
    and as it would be."""

    contribution: Contribution
    base: dict[str, Any]
    current: dict[str, Any]
    current_revision: int
    proposed: dict[str, Any]

    @property
    def record_changed(self) -> bool:
        return self.current_revision != self.contribution.base_revision


@dataclass(frozen=True, slots=True)
class Decision:
    contribution_id: int
    record_id: str
    revision: int


# --- submitting -------------------------------------------------------------------------------------------------


def _clean_note(note: str) -> str:
    return (note or "").strip()[:MAX_NOTE]


def _as_citizen_record(data: dict[str, Any]) -> dict[str, Any]:
    kind = data.get("kind")
    if kind not in CONTRIBUTABLE_KINDS:
        raise RecordValidationError([FieldError("kind", "投稿できる種別を選んでください")])
    fields = {name: value for name, value in data.items() if name not in LOCKED_FIELDS}
    return {**fields, "kind": kind, "provenance": "citizen", "status": "published"}


def submit_record(store: Store, contributor_id: int, data: dict[str, Any], *, note: str = "") -> Contribution:
    """A proposed new record, validated now (RecordValidationError) so the editor sees a record that can be
    accepted as it is. Provenance is always citizen."""
    record = record_to_dict(validate_record(_as_citizen_record(data)))
    with store.session() as db:
        row = ContributionRow(
            contributor_id=contributor_id,
            record_id=None,
            kind=record["kind"],
            data=record,
            base_revision=None,
            note=_clean_note(note),
            status=PENDING,
            reason="",
        )
        db.add(row)
        db.flush()
        return Contribution.of(row)


def changed_fields(current: dict[str, Any], proposed: dict[str, Any]) -> dict[str, Any]:
    """The editable fields whose validated value differs from the record's; raises RecordValidationError."""
    editable = {name: value for name, value in proposed.items() if name not in LOCKED_FIELDS}
    merged = record_to_dict(validate_record({**current, **editable}))
    return {
        name: merged[name]
        for name in merged
        if name not in LOCKED_FIELDS and merged[name] != current.get(name)
    }


def submit_edit(
    store: Store,
    contributor_id: int,
    record_id: str,
    proposed: dict[str, Any],
    *,
    base_revision: int,
    note: str = "",
) -> Contribution:
    """A suggested edit of a published record. `proposed` is the record as the contributor would have it (the form
    shows every field); only the fields that differ from revision `base_revision` are kept."""
    with store.session() as db:
        base = _revision_data(db, record_id, base_revision)
        kind = db.scalar(
            select(RecordRow.kind).where(RecordRow.id == record_id, RecordRow.status == "published")
        )
        if base is None or kind is None:
            raise ContributionNotFound()
        changes = changed_fields(base, proposed)
        if not changes:
            raise NothingChanged()
        row = ContributionRow(
            contributor_id=contributor_id,
            record_id=record_id,
            kind=kind,
            data=changes,
            base_revision=base_revision,
            note=_clean_note(note),
            status=PENDING,
            reason="",
        )
        db.add(row)
        db.flush()
        return Contribution.of(row)


def withdraw(store: Store, contribution_id: int, *, contributor_id: int) -> None:
    """The contributor takes back their own pending contribution. Someone else's is not found (no hint that it
    exists); a decided one raises AlreadyDecided."""
    with store.session() as db:
        result = db.execute(
            update(ContributionRow)
            .where(
                ContributionRow.id == contribution_id,
                ContributionRow.contributor_id == contributor_id,
                ContributionRow.status == PENDING,
            )
            .values(status=ContributionStatus.WITHDRAWN.value, decided_at=utcnow())
        )
        if result.rowcount == 1:
            return
        status = db.scalar(
            select(ContributionRow.status).where(
                ContributionRow.id == contribution_id, ContributionRow.contributor_id == contributor_id
            )
        )
    if status is None:
        raise ContributionNotFound()
    raise AlreadyDecided(status)


# --- reading ----------------------------------------------------------------------------------------------------


def get(store: Store, contribution_id: int) -> Contribution | None:
    with store.session(readonly=True) as db:
        row = db.get(ContributionRow, contribution_id)
        return Contribution.of(row) if row is not None else None


def of_contributor(store: Store, contributor_id: int, limit: int = 200) -> list[Contribution]:
    with store.session(readonly=True) as db:
        rows = db.scalars(
            select(ContributionRow)
            .where(ContributionRow.contributor_id == contributor_id)
            .order_by(ContributionRow.id.desc())
            .limit(limit)
        )
        return [Contribution.of(row) for row in rows]


def pending(store: Store, limit: int = 500) -> list[Contribution]:
    """Oldest first: the queue is worked in the order it arrived."""
    with store.session(readonly=True) as db:
        rows = db.scalars(
            select(ContributionRow)
            .where(ContributionRow.status == PENDING)
            .order_by(ContributionRow.id)
            .limit(limit)
        )
        return [Contribution.of(row) for row in rows]


def _revision_data(db: Session, record_id: str, revision: int) -> dict[str, Any] | None:
    return db.scalar(
        select(RevisionRow.data).where(RevisionRow.record_id == record_id, RevisionRow.revision == revision)
    )


def review(store: Store, contribution: Contribution) -> Review | None:
    """For a suggested edit: base, current and proposed record (None when the record is gone)."""
    if not contribution.is_edit or contribution.record_id is None:
        return None
    with store.session(readonly=True) as db:
        row = db.get(RecordRow, contribution.record_id)
        if row is None:
            return None
        base = _revision_data(db, row.id, contribution.base_revision or 0) or {}
        current = dict(row.data)
        revision = row.revision
    return Review(contribution, base, current, revision, {**current, **contribution.data})


def proposed_data(store: Store, contribution: Contribution) -> dict[str, Any]:
    """The record as it would be once accepted: what an editor's scope is checked against."""
    if not contribution.is_edit:
        return contribution.data
    found = review(store, contribution)
    return found.proposed if found else contribution.data


def display_names(store: Store, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    with store.session(readonly=True) as db:
        return dict(
            db.execute(select(UserRow.id, UserRow.display_name).where(UserRow.id.in_(user_ids))).all()
        )


# --- deciding ---------------------------------------------------------------------------------------------------


def _claim(
    db: Session, contribution_id: int, status: ContributionStatus, editor_id: int, reason: str = ""
) -> None:
    """pending → status, or AlreadyDecided: the conditional UPDATE is what makes one of two deciders win."""
    result = db.execute(
        update(ContributionRow)
        .where(ContributionRow.id == contribution_id, ContributionRow.status == PENDING)
        .values(status=status.value, decided_by=editor_id, decided_at=utcnow(), reason=reason)
    )
    if result.rowcount != 1:
        now = db.scalar(select(ContributionRow.status).where(ContributionRow.id == contribution_id))
        if now is None:
            raise ContributionNotFound()
        raise AlreadyDecided(now)


def _author(db: Session, contributor_id: int, editor_id: int) -> str:
    """Names both people in the revision (≤ 128 characters): who wrote it and who let it in."""
    names = dict(
        db.execute(
            select(UserRow.id, UserRow.display_name).where(UserRow.id.in_([contributor_id, editor_id]))
        ).all()
    )
    contributor = names.get(contributor_id, "")[:40]
    editor = names.get(editor_id, "")[:40]
    return f"{contributor}（user:{contributor_id}）投稿・{editor}（user:{editor_id}）承認"[:128]


def _summary(contribution: Contribution) -> str:
    what = "修正提案" if contribution.is_edit else "市民投稿"
    note = f"：{contribution.note[:200]}" if contribution.note else ""
    return f"{what} #{contribution.id} を承認{note}"


def accept(
    library: Any, contribution_id: int, *, editor_id: int, reviewed_revision: int | None = None
) -> Decision:
    """Accept a contribution; it becomes a revision and is indexed.

    A suggested edit is applied onto the record's current revision only if that is the revision the editor
    reviewed (`reviewed_revision`, by default the contributor's base revision); otherwise RecordChanged, and the
    editor is shown the difference before accepting again. Raises AlreadyDecided when another decision won,
    RecordValidationError when an edit no longer fits the record.
    """
    store: Store = library.store
    contribution = get(store, contribution_id)
    if contribution is None:
        raise ContributionNotFound()
    if contribution.status != PENDING:
        raise AlreadyDecided(contribution.status)
    if contribution.is_edit:
        return _accept_edit(library, contribution, editor_id, reviewed_revision)
    record = {
        **contribution.data,
        "id": None,
        "source": CONTRIBUTION_SOURCE,
        "external_id": str(contribution.id),
    }
    with store.session() as db:
        _claim(db, contribution.id, ContributionStatus.ACCEPTED, editor_id)
        # The record is created in the same transaction as the decision: both happen, or neither.
        outcome = ingest_record(
            db,
            record,
            author=_author(db, contribution.contributor_id, editor_id),
            summary=_summary(contribution),
        )
        db.execute(
            update(ContributionRow)
            .where(ContributionRow.id == contribution.id)
            .values(record_id=outcome.record_id, resulting_revision=outcome.revision)
        )
    library.drain()
    return Decision(contribution.id, outcome.record_id, outcome.revision)


def _accept_edit(
    library: Any, contribution: Contribution, editor_id: int, reviewed_revision: int | None
) -> Decision:
    # Only suggested edits go through the editors' code path (overrides); new records need just ingest.
    from indexer.editing import NoChanges, edit_in_session
    from indexer.store import StaleRevision

    store: Store = library.store
    record_id = contribution.record_id
    assert record_id is not None
    reviewed = contribution.base_revision if reviewed_revision is None else reviewed_revision
    with store.session(readonly=True) as db:
        current = db.scalar(select(RecordRow.revision).where(RecordRow.id == record_id))
        author = _author(db, contribution.contributor_id, editor_id)
    if current is None:
        raise ContributionNotFound()
    if current != reviewed:
        raise RecordChanged(current)
    # The decision and the revision commit together: a crash between them cannot leave an accepted suggestion
    # without its revision, and a failed edit leaves the suggestion pending (the transaction rolls back).
    try:
        with store.session() as db:
            _claim(db, contribution.id, ContributionStatus.ACCEPTED, editor_id)
            try:
                revision = edit_in_session(
                    db, record_id, contribution.data, editor_id=editor_id, author=author,
                    summary=_summary(contribution), expected_revision=current,
                ).revision  # fmt: skip
            except NoChanges:
                # The record already says what was proposed (someone made the same correction): nothing to do.
                revision = current
            db.execute(
                update(ContributionRow)
                .where(ContributionRow.id == contribution.id)
                .values(resulting_revision=revision)
            )
    except StaleRevision as exc:
        raise RecordChanged(exc.current) from exc
    except LookupError as exc:
        raise ContributionNotFound() from exc
    library.drain()
    return Decision(contribution.id, record_id, revision)


def reject(store: Store, contribution_id: int, *, editor_id: int, reason: str) -> None:
    """Decline with a reason the contributor will read. Raises ReasonRequired or AlreadyDecided."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise ReasonRequired()
    with store.session() as db:
        _claim(db, contribution_id, ContributionStatus.REJECTED, editor_id, reason)
