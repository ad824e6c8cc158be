"""Editors correct records (issue 5, DESIGN §6): the edit form, history, diffs, revert, retract/restore, verify,
and settling "the source changed after this correction". The writes are `indexer.editing`'s; this module checks
who may call them, turns forms into changes and back, and audits every action (T30).

Who may do what:
- every route is for editors and admins (`access(*EDITORS)`); the actions that change a record also need the
  editor's scope (`may_edit`), else 403 and a `denied` audit event;
- history and diffs are EDITORS too, not public: a retracted record's history must not be public, earlier
  revisions can hold what was corrected away for a reason (a phone number, a wrong accusation), and the
  revisions name editors' accounts. Citizens see the revision count and the last update on the record page.

Optimistic locking: each form carries the revision it was made from; a save over a newer one is answered 409 with
the other person's changes beside yours and your text kept in the form, now based on the newer revision.

Diffs are lists of (op, text) segments that the templates mark with <ins>/<del>: autoescaped text, no Markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from indexer.editing import (
    NOT_EDITABLE,
    SUMMARY_REQUIRED,
    NoChanges,
    OutOfScope,
    edit_record,
    mark_verified,
    resolve_override,
    restore_record,
    retract_record,
    revert_record,
)
from indexer.library import Library
from indexer.store import RecordOverrideRow, RecordRow, RevisionRow, StaleRevision, UserRow
from indexer.store.curation import AuditOutcome
from schemas import (
    JST,
    KIND_MODELS,
    PROVENANCE_LABELS,
    SEVERITY_LABELS,
    STATUS_LABELS,
    RecordValidationError,
    validate_record,
)
from search_app import get_library
from search_app.auth.audit import audit
from search_app.auth.policy import EDITORS, access, may_edit
from search_app.views import FIELD_LABELS, KIND_FIELD_LABELS, WEEKDAYS

bp = Blueprint("editing", __name__)

# Set by their own buttons (verify), by the crawler (fetched_at) or by the notice clustering (reported_by, the
# shops that reported a recall), never typed into the edit form.
NOT_IN_FORM = NOT_EDITABLE | {"verified_at", "fetched_at", "reported_by"}
EDIT_LABELS = {
    "title": "タイトル",
    "body": "本文",
    "url": "出典のURL",
    "provenance": "情報源",
    "verified_at": "最終確認日",
    "status": "公開状態",
    "source": "取り込み元",
    "external_id": "取り込み元のID",
    "reported_by": "ほかの報告元",
}
OPTION_LABELS = {"provenance": PROVENANCE_LABELS, "severity": SEVERITY_LABELS, "status": STATUS_LABELS}
LONG_TEXT = 500  # longer strings get a textarea
CHAR_DIFF_LIMIT = 20_000  # longer texts are compared line by line first (SequenceMatcher is quadratic)
NO_STORE = {"Cache-Control": "no-store"}
AUTHOR_USER = re.compile(r"user:(\d+)$")


def field_label(kind: str, name: str) -> str:
    return KIND_FIELD_LABELS.get((kind, name)) or EDIT_LABELS.get(name) or FIELD_LABELS.get(name, name)


# --- form fields ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    label: str
    widget: str  # text, textarea, lines, select, checkbox, datetime, number
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()
    hint: str = ""
    step: str = ""


def _schema_of(property_schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an Optional field's JSON Schema."""
    for branch in property_schema.get("anyOf", ()):
        if branch.get("type") != "null":
            return {**property_schema, **branch}
    return property_schema


def form_fields(kind: str) -> list[FormField]:
    """The edit form of a kind, read from its pydantic model's JSON Schema: a new field appears by itself."""
    schema = KIND_MODELS[kind].model_json_schema()
    required = set(schema.get("required", ()))
    fields: list[FormField] = []
    for name, raw in schema["properties"].items():
        if name in NOT_IN_FORM:
            continue
        spec = _schema_of(raw)
        label = field_label(kind, name)
        if spec.get("type") == "array":
            hint = "1行に1つずつ入力してください。"
            if name == "categories":
                hint += "カテゴリID（例: safety.recall）で入力します。"
            fields.append(FormField(name, label, "lines", hint=hint))
        elif "enum" in spec:
            labels = OPTION_LABELS.get(name, {})
            options = tuple((value, labels.get(value, value)) for value in spec["enum"])
            fields.append(FormField(name, label, "select", name in required, options))
        elif spec.get("type") == "boolean":
            fields.append(FormField(name, label, "checkbox"))
        elif spec.get("format") == "date-time":
            fields.append(FormField(name, label, "datetime", hint="日本時間"))
        elif spec.get("type") in ("integer", "number"):
            step = "1" if spec["type"] == "integer" else "any"
            fields.append(FormField(name, label, "number", step=step))
        elif spec.get("maxLength", 0) > LONG_TEXT and spec.get("format") != "uri":
            fields.append(FormField(name, label, "textarea", name in required))
        else:
            fields.append(FormField(name, label, "text", name in required))
    return fields


def form_text(widget: str, value: Any) -> Any:
    """A stored value as its form control shows it (a bool for a checkbox, text otherwise)."""
    if widget == "checkbox":
        return bool(value)
    if value is None:
        return ""
    if widget == "lines":
        return "\n".join(str(item) for item in value)
    if widget == "datetime":
        when = datetime.fromisoformat(value).astimezone(JST)
        return when.strftime("%Y-%m-%dT%H:%M:%S" if when.second else "%Y-%m-%dT%H:%M")
    return str(value)


def submitted_text(spec: FormField, form: Any) -> Any:
    if spec.widget == "checkbox":
        return spec.name in form
    # Browsers send textarea line breaks as CRLF.
    return form.get(spec.name, "").replace("\r\n", "\n").replace("\r", "\n")


def parsed_value(spec: FormField, text: Any) -> Any:
    """Form text → the value handed to the schema, which validates and normalizes it (a naive date is JST)."""
    if spec.widget == "checkbox":
        return bool(text)
    if spec.widget == "lines":
        return [line.strip() for line in text.split("\n") if line.strip()]
    if spec.widget in ("datetime", "number"):
        return text.strip() or None
    return text


def form_values(fields: list[FormField], data: dict[str, Any]) -> dict[str, Any]:
    return {spec.name: form_text(spec.widget, data.get(spec.name)) for spec in fields}


def changes_from_form(fields: list[FormField], form: Any, base: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(changes, submitted texts): only the fields whose text differs from the base revision's are changes, so a
    value the form cannot show exactly (seconds, a float's spelling) is not rewritten by merely saving."""
    changes: dict[str, Any] = {}
    texts: dict[str, Any] = {}
    for spec in fields:
        text = submitted_text(spec, form)
        texts[spec.name] = text
        if text != form_text(spec.widget, base.get(spec.name)):
            changes[spec.name] = parsed_value(spec, text)
    return changes, texts


# --- diffs ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    op: str  # equal, insert, delete
    text: str


@dataclass(frozen=True, slots=True)
class FieldDiff:
    name: str
    label: str
    segments: list[Segment]
    old: str
    new: str


def display_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, list):
        return "\n".join(display_text(item) for item in value)
    return str(value)


def _char_segments(old: str, new: str) -> list[Segment]:
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            segments.append(Segment("equal", old[i1:i2]))
            continue
        if i2 > i1:
            segments.append(Segment("delete", old[i1:i2]))
        if j2 > j1:
            segments.append(Segment("insert", new[j1:j2]))
    return segments


def diff_text(old: str, new: str) -> list[Segment]:
    """Character by character (Japanese has no spaces to split words on); long texts line by line first, then
    character by character within the changed lines."""
    if len(old) + len(new) <= CHAR_DIFF_LIMIT:
        return _char_segments(old, new)
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        before, after = "".join(a[i1:i2]), "".join(b[j1:j2])
        if tag == "equal":
            segments.append(Segment("equal", before))
        elif len(before) + len(after) <= CHAR_DIFF_LIMIT:
            segments.extend(_char_segments(before, after))
        else:
            segments.extend(s for s in (Segment("delete", before), Segment("insert", after)) if s.text)
    return segments


def diff_records(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[FieldDiff]:
    """The fields that differ, in the kind's field order."""
    names = list(KIND_MODELS[kind].model_fields) if kind in KIND_MODELS else []
    names += [name for name in {**old, **new} if name not in names]
    diffs = []
    for name in names:
        before, after = display_text(old.get(name)), display_text(new.get(name))
        if before != after:
            diffs.append(FieldDiff(name, field_label(kind, name), diff_text(before, after), before, after))
    return diffs


# --- helpers ----------------------------------------------------------------------------------------------------


def _library() -> Library:
    return get_library(current_app)


def _record(record_id: str) -> RecordRow:
    row = _library().get_record(record_id)
    if row is None:
        abort(404, description="この記録は見つかりません。")
    return row


def _target(record_id: str) -> str:
    return f"record:{record_id}"


def _require_scope(row: RecordRow, action: str) -> None:
    if not may_edit(current_user, row.data):
        audit(action, _target(row.id), outcome=AuditOutcome.DENIED, reason="scope")
        abort(403, description="この記録はあなたの担当範囲の外です。")


def _in_scope(data: dict[str, Any]) -> bool:
    """Checked on the record as a save would leave it, as well as before: a scoped editor may not move a record
    out of their scope (or into another editor's) by changing its categories or organization."""
    return may_edit(current_user, data)


def _out_of_scope(
    row: RecordRow, action: str, fields: list[FormField], texts: dict[str, Any], base: int, summary: str
) -> tuple[str, int, dict[str, str]]:
    audit(action, _target(row.id), outcome=AuditOutcome.DENIED, reason="scope-after-change")
    message = "この変更をすると記録があなたの担当範囲の外になるため、保存できません。分類や団体を担当の範囲内にしてください。"
    return _edit_page(row, fields, texts, base_revision=base, summary=summary, general=[message], status=403)


def _author() -> str:
    return f"user:{current_user.id}"


def _revision_data(record_id: str, revision: int) -> dict[str, Any] | None:
    with _library().store.session(readonly=True) as session:
        return session.scalar(
            select(RevisionRow.data).where(RevisionRow.record_id == record_id, RevisionRow.revision == revision)
        )


def _base_revision(row: RecordRow) -> int:
    base = request.form.get("base_revision", type=int)
    if base is None or base < 1 or base > row.revision:
        abort(400, description="元にした版の番号が正しくありません。ページを読み込み直してください。")
    return base


def jst_time(value: datetime) -> str:
    when = value.astimezone(JST)
    return f"{when.year}年{when.month}月{when.day}日（{WEEKDAYS[when.weekday()]}）{when.hour}:{when.minute:02d}"


def _after_save(row_id: str, status: str) -> Response:
    if status == "published":
        return redirect(url_for("search.record", record_id=row_id))
    return redirect(url_for("editing.history", record_id=row_id))


# --- the record page's editor box -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordEditing:
    may_edit: bool
    edit_url: str
    history_url: str
    source_changed: list[str]


def record_editing(row: RecordRow) -> RecordEditing | None:
    """For the record page: None for readers; links and the changed-source notice for editors."""
    if not (current_user.is_authenticated and current_user.role in EDITORS):
        return None
    with _library().store.session(readonly=True) as session:
        changed = session.scalars(
            select(RecordOverrideRow.field)
            .where(RecordOverrideRow.record_id == row.id, RecordOverrideRow.source_changed.is_(True))
            .order_by(RecordOverrideRow.field)
        ).all()
    return RecordEditing(
        may_edit=may_edit(current_user, row.data),
        edit_url=url_for("editing.edit", record_id=row.id),
        history_url=url_for("editing.history", record_id=row.id),
        source_changed=[field_label(row.kind, name) for name in changed],
    )


@bp.app_context_processor
def _editing_helpers() -> dict[str, Any]:
    return {"record_editing": record_editing}


# --- edit -------------------------------------------------------------------------------------------------------


def _edit_page(
    row: RecordRow,
    fields: list[FormField],
    values: dict[str, Any],
    *,
    base_revision: int,
    summary: str = "",
    errors: dict[str, list[str]] | None = None,
    general: list[str] | None = None,
    conflict: dict[str, Any] | None = None,
    status: int = 200,
) -> tuple[str, int, dict[str, str]]:
    html = render_template(
        "editing/edit.html",
        row=row,
        fields=fields,
        values=values,
        base_revision=base_revision,
        summary=summary,
        errors=errors or {},
        general=general or [],
        conflict=conflict,
        STATUS_LABELS=STATUS_LABELS,
    )
    return html, status, NO_STORE


@bp.get("/records/<record_id>/edit")
@access(*EDITORS)
def edit(record_id: str) -> tuple[str, int, dict[str, str]]:
    row = _record(record_id)
    _require_scope(row, "record.edit")
    fields = form_fields(row.kind)
    return _edit_page(row, fields, form_values(fields, row.data), base_revision=row.revision)


@bp.post("/records/<record_id>/edit")
@access(*EDITORS)
def save(record_id: str) -> Response | tuple[str, int, dict[str, str]]:
    row = _record(record_id)
    _require_scope(row, "record.edit")
    base = _base_revision(row)
    base_data = _revision_data(record_id, base) or row.data
    fields = form_fields(row.kind)
    changes, texts = changes_from_form(fields, request.form, base_data)
    summary = request.form.get("summary", "")
    # Checked here as well as in edit_record, so that one answer lists every problem, the summary included.
    errors = _field_errors(fields, {**base_data, **changes})
    if not summary.strip():
        errors.setdefault("summary", []).append(SUMMARY_REQUIRED)
    if errors:
        general = errors.pop("", [])
        return _edit_page(
            row, fields, texts, base_revision=base, summary=summary, errors=errors, general=general, status=422
        )
    try:
        result = edit_record(
            _library(), record_id, changes, editor_id=current_user.id, author=_author(),
            summary=summary, expected_revision=base, permitted=_in_scope,
        )
    except OutOfScope:
        return _out_of_scope(row, "record.edit", fields, texts, base, summary)
    except StaleRevision as stale:
        return _conflict(record_id, fields, base, base_data, changes, texts, summary, stale)
    except RecordValidationError as invalid:
        errors = _errors_by_field(fields, invalid)
        general = errors.pop("", [])
        return _edit_page(
            row, fields, texts, base_revision=base, summary=summary, errors=errors, general=general, status=422
        )
    except NoChanges as nothing:
        return _edit_page(row, fields, texts, base_revision=base, summary=summary, general=[str(nothing)], status=422)
    except ValueError as refused:  # the summary
        return _edit_page(
            row, fields, texts, base_revision=base, summary=summary, errors={"summary": [str(refused)]}, status=422
        )
    audit("record.edit", _target(record_id), revision=result.revision, fields=list(result.changed_fields))
    flash(f"保存しました（第{result.revision}版）。")
    return _after_save(record_id, result.status)


def _errors_by_field(fields: list[FormField], invalid: RecordValidationError) -> dict[str, list[str]]:
    """Messages by form field ("jan_codes.1" belongs to jan_codes); the rest under ""."""
    names = {spec.name for spec in fields}
    errors: dict[str, list[str]] = {}
    for error in invalid.errors:
        name = error.field.split(".")[0]
        if name in names:
            errors.setdefault(name, []).append(error.message)
        else:
            errors.setdefault("", []).append(str(error))
    return errors


def _field_errors(fields: list[FormField], data: dict[str, Any]) -> dict[str, list[str]]:
    try:
        validate_record(data)
    except RecordValidationError as invalid:
        return _errors_by_field(fields, invalid)
    return {}


def _conflict(
    record_id: str,
    fields: list[FormField],
    base: int,
    base_data: dict[str, Any],
    changes: dict[str, Any],
    texts: dict[str, Any],
    summary: str,
    stale: StaleRevision,
) -> tuple[str, int, dict[str, str]]:
    """409: the other person's changes (base → current) beside yours (base → your text). The form now holds the
    current revision with your changed fields on top, based on the current revision, so a re-save keeps both."""
    audit("record.edit", _target(record_id), outcome=AuditOutcome.FAILED, reason="stale", base=base,
          current=stale.current)
    current = _record(record_id)
    widgets = {spec.name: spec.widget for spec in fields}
    theirs = diff_records(current.kind, base_data, current.data)
    yours = [
        FieldDiff(name, field_label(current.kind, name), diff_text(before, after), before, after)
        for name in changes
        for before, after in [(display_text(base_data.get(name)), _display_submitted(widgets[name], texts[name]))]
    ]
    values = form_values(fields, current.data) | {name: texts[name] for name in changes}
    both = sorted({d.name for d in theirs} & set(changes))
    conflict = {
        "theirs": theirs,
        "yours": yours,
        "both": [field_label(current.kind, name) for name in both],
        "base": base,
        "current": current.revision,
        "authors": _author_names(_authors_since(record_id, base)),
    }
    return _edit_page(
        current, fields, values, base_revision=current.revision, summary=summary, conflict=conflict, status=409
    )


def _display_submitted(widget: str, text: Any) -> str:
    if widget == "checkbox":
        return "はい" if text else "いいえ"
    return str(text)


def _authors_since(record_id: str, base: int) -> list[str]:
    with _library().store.session(readonly=True) as session:
        return list(
            session.scalars(
                select(RevisionRow.author)
                .where(RevisionRow.record_id == record_id, RevisionRow.revision > base)
                .order_by(RevisionRow.revision)
            )
        )


def _author_names(authors: list[str]) -> list[str]:
    """Revision authors as people read them: "user:12" becomes the account's display name."""
    ids = {int(match.group(1)) for author in authors if (match := AUTHOR_USER.match(author))}
    names: dict[int, str] = {}
    if ids:
        with _library().store.session(readonly=True) as session:
            names = dict(session.execute(select(UserRow.id, UserRow.display_name).where(UserRow.id.in_(ids))).all())
    shown = []
    for author in authors:
        match = AUTHOR_USER.match(author)
        shown.append(names.get(int(match.group(1)), author) if match else author)
    return list(dict.fromkeys(shown))


# --- history and diffs ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevisionView:
    number: int
    author: str
    when: str
    summary: str


@dataclass(frozen=True, slots=True)
class OverrideView:
    name: str
    label: str
    value: str
    source_value: str
    source_changed: bool
    source_latest: str


def _history_page(row: RecordRow, *, errors: list[str] | None = None, status: int = 200) -> tuple[str, int, dict[str, str]]:
    with _library().store.session(readonly=True) as session:
        revisions = session.execute(
            select(RevisionRow.revision, RevisionRow.author, RevisionRow.created_at, RevisionRow.summary)
            .where(RevisionRow.record_id == row.id)
            .order_by(RevisionRow.revision.desc())
        ).all()
        overrides = list(
            session.scalars(
                select(RecordOverrideRow).where(RecordOverrideRow.record_id == row.id).order_by(RecordOverrideRow.field)
            )
        )
    names = {author: _author_names([author])[0] for author in {r.author for r in revisions}}
    html = render_template(
        "editing/history.html",
        row=row,
        revisions=[RevisionView(r.revision, names[r.author], jst_time(r.created_at), r.summary) for r in revisions],
        overrides=[
            OverrideView(
                o.field, field_label(row.kind, o.field), display_text(o.value), display_text(o.source_value),
                o.source_changed, display_text(o.source_latest),
            )
            for o in overrides
        ],
        may_edit=may_edit(current_user, row.data),
        errors=errors or [],
        STATUS_LABELS=STATUS_LABELS,
        verified_at=row.data.get("verified_at"),
    )
    return html, status, NO_STORE


@bp.get("/records/<record_id>/history")
@access(*EDITORS)
def history(record_id: str) -> tuple[str, int, dict[str, str]]:
    return _history_page(_record(record_id))


@bp.get("/records/<record_id>/diff")
@access(*EDITORS)
def diff(record_id: str) -> tuple[str, int, dict[str, str]]:
    row = _record(record_id)
    to = request.args.get("to", default=row.revision, type=int)
    since = request.args.get("from", default=max(1, to - 1), type=int)
    if not (1 <= since <= row.revision and 1 <= to <= row.revision):
        abort(404, description=f"この記録の版は第1版から第{row.revision}版までです。")
    old, new = _revision_data(record_id, since), _revision_data(record_id, to)
    if old is None or new is None:
        abort(404)
    html = render_template(
        "editing/diff.html", row=row, since=since, to=to, diffs=diff_records(row.kind, old, new),
        revisions=range(1, row.revision + 1),
    )
    return html, 200, NO_STORE


# --- actions ----------------------------------------------------------------------------------------------------


def _action(record_id: str, action: str, run: Any, done: str) -> Response | tuple[str, int, dict[str, str]]:
    """Scope check, the library call, the audit event and the answer, the same for every button."""
    row = _record(record_id)
    _require_scope(row, action)
    base = _base_revision(row)
    try:
        result = run(row, base)
    except StaleRevision as stale:
        audit(action, _target(record_id), outcome=AuditOutcome.FAILED, reason="stale", base=base,
              current=stale.current)
        message = f"ほかの人が先に第{stale.current}版を保存しました。内容を確かめてから、もう一度操作してください。"
        return _history_page(_record(record_id), errors=[message], status=409)
    except OutOfScope:
        audit(action, _target(record_id), outcome=AuditOutcome.DENIED, reason="scope-after-change")
        message = "この操作をすると記録があなたの担当範囲の外になるため、できません。"
        return _history_page(row, errors=[message], status=403)
    except (ValueError, LookupError) as refused:  # NoChanges and RecordValidationError are ValueErrors
        audit(action, _target(record_id), outcome=AuditOutcome.FAILED, reason=type(refused).__name__)
        text = str(refused) if isinstance(refused, ValueError) else "この操作の対象が見つかりません。"
        return _history_page(row, errors=[text], status=422)
    audit(action, _target(record_id), revision=result.revision, fields=list(result.changed_fields))
    flash(done.format(revision=result.revision))
    return _after_save(record_id, result.status)


@bp.post("/records/<record_id>/revert/<int:revision>")
@access(*EDITORS)
def revert(record_id: str, revision: int) -> Response | tuple[str, int, dict[str, str]]:
    def run(row: RecordRow, base: int) -> Any:
        return revert_record(
            _library(), record_id, revision, editor_id=current_user.id, author=_author(),
            summary=request.form.get("summary", ""), expected_revision=base, permitted=_in_scope,
        )

    return _action(record_id, "record.revert", run, f"第{revision}版の内容に戻しました（第{{revision}}版）。")


@bp.post("/records/<record_id>/retract")
@access(*EDITORS)
def retract(record_id: str) -> Response | tuple[str, int, dict[str, str]]:
    def run(row: RecordRow, base: int) -> Any:
        return retract_record(
            _library(), record_id, editor_id=current_user.id, author=_author(),
            summary=request.form.get("summary", ""), expected_revision=base,
        )

    return _action(record_id, "record.retract", run, "取り下げました。検索には表示されません（第{revision}版）。")


@bp.post("/records/<record_id>/restore")
@access(*EDITORS)
def restore(record_id: str) -> Response | tuple[str, int, dict[str, str]]:
    def run(row: RecordRow, base: int) -> Any:
        return restore_record(
            _library(), record_id, editor_id=current_user.id, author=_author(),
            summary=request.form.get("summary", ""), expected_revision=base,
        )

    return _action(record_id, "record.restore", run, "公開に戻しました（第{revision}版）。")


@bp.post("/records/<record_id>/verify")
@access(*EDITORS)
def verify(record_id: str) -> Response | tuple[str, int, dict[str, str]]:
    def run(row: RecordRow, base: int) -> Any:
        return mark_verified(
            _library(), record_id, editor_id=current_user.id, author=_author(), expected_revision=base
        )

    return _action(record_id, "record.verify", run, "内容を確認済みにしました（第{revision}版）。")


@bp.post("/records/<record_id>/overrides/<field>/resolve")
@access(*EDITORS)
def resolve(record_id: str, field: str) -> Response | tuple[str, int, dict[str, str]]:
    keep = request.form.get("keep") == "1"

    def run(row: RecordRow, base: int) -> Any:
        return resolve_override(
            _library(), record_id, field, keep, editor_id=current_user.id, author=_author(),
            expected_revision=base,
        )

    done = "修正をそのまま残しました。" if keep else "出典の新しい内容を採用しました（第{revision}版）。"
    return _action(record_id, "record.override.resolve", run, done)
