"""Citizens' contributions and the editors' moderation queue (issue 5).

Two blueprints: "contributions" (any logged-in account proposes a new record or an edit, sees and withdraws its
own) and "moderation" (editors and admins accept or reject, each editor only within their scope). The library
side, with the rules that keep pending contributions out of search, is `indexer.contributions`.

A citizen never learns about someone else's contribution: the moderation pages are for editors only (403), and
withdrawing someone else's answers 404, as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from indexer import contributions as library_contributions
from indexer.contributions import (
    CONTRIBUTABLE_KINDS,
    LOCKED_FIELDS,
    AlreadyDecided,
    Contribution,
    ContributionNotFound,
    NothingChanged,
    ReasonRequired,
    RecordChanged,
)
from indexer.store import ContributionStatus
from schemas import (
    JST,
    KIND_LABELS,
    KIND_MODELS,
    SEVERITY_LABELS,
    FieldError,
    RecordValidationError,
    category_label,
    is_category,
    load_taxonomy,
)
from search_app.auth.audit import audit
from search_app.auth.policy import ANY_ACCOUNT, EDITORS, access, may_edit
from search_app.auth.ratelimit import limited
from search_app.views import DATE_FIELDS, FIELD_LABELS, format_datetime

bp = Blueprint("contributions", __name__)
moderation_bp = Blueprint("moderation", __name__, url_prefix="/moderation")

# Modest: a neighbour with a lot to tell is not slowed down, a script filling the queue is.
CONTRIBUTION_LIMIT = "20/hour"

STATUS_LABELS = {
    ContributionStatus.PENDING.value: "確認待ち",
    ContributionStatus.ACCEPTED.value: "掲載されました",
    ContributionStatus.REJECTED.value: "見送りになりました",
    ContributionStatus.WITHDRAWN.value: "取り下げました",
}
BASE_LABELS = {"title": "タイトル", "body": "本文", "url": "出典の URL"}
TEXTAREA_FIELDS = frozenset({"body", "hazard", "action", "contact", "points_rule"})
NUMBER_FIELDS = frozenset({"price_yen", "latitude", "longitude"})
CHOICE_FIELDS: dict[str, dict[str, str]] = {"severity": SEVERITY_LABELS}
HINTS = {
    "categories": "複数選べます（Ctrl または ⌘ を押しながら選択）。",
    "tags": "1行に1つずつ入力してください。",
    "jan_codes": "1行に1つずつ、8桁または13桁の数字で入力してください。",
    "model_numbers": "1行に1つずつ入力してください。",
    "lot_numbers": "1行に1つずつ入力してください。",
    "allergens": "1行に1つずつ、特定原材料などの名称で入力してください（例: 小麦）。",
    "shop_ids": "参加店舗の記録IDを1行に1つずつ入力してください。",
    **{name: "例: 2026-11-01 または 2026-11-01 10:00" for name in DATE_FIELDS},
}


def _library() -> Any:
    return current_app.extensions["library"]


def _store() -> Any:
    return _library().store


def field_label(name: str) -> str:
    return BASE_LABELS.get(name) or FIELD_LABELS.get(name, name)


# --- the form of a record kind ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormField:
    """One input of a kind's form, with what the user typed (or the record holds) and the error beside it."""

    name: str
    label: str
    widget: str  # text, textarea, lines, categories, checkbox, number, choice, datetime
    required: bool
    value: Any
    error: str = ""
    hint: str = ""
    choices: tuple[tuple[str, str], ...] = ()


def editable_fields(kind: str) -> list[tuple[str, Any]]:
    return [
        (name, info) for name, info in KIND_MODELS[kind].model_fields.items() if name not in LOCKED_FIELDS
    ]


def _widget(name: str, default: Any) -> str:
    if name == "categories":
        return "categories"
    if isinstance(default, list):
        return "lines"
    if isinstance(default, bool):
        return "checkbox"
    if name in CHOICE_FIELDS:
        return "choice"
    if name in NUMBER_FIELDS:
        return "number"
    if name in DATE_FIELDS:
        return "datetime"
    return "textarea" if name in TEXTAREA_FIELDS else "text"


def _category_choices() -> tuple[tuple[str, str], ...]:
    taxonomy = load_taxonomy()
    choices: list[tuple[str, str]] = []
    for root in taxonomy.roots:
        choices.append((root.id, root.label))
        choices.extend((child.id, f"{root.label}：{child.label}") for child in taxonomy.children(root.id))
    return tuple(choices)


def _form_text(name: str, widget: str, value: Any) -> Any:
    """A stored value as its input shows it."""
    if value is None:
        return "" if widget != "categories" else []
    if widget == "lines":
        return "\n".join(str(item) for item in value)
    if widget == "categories":
        return list(value)
    if widget == "checkbox":
        return bool(value)
    if widget == "datetime":
        when = datetime.fromisoformat(value).astimezone(JST) if isinstance(value, str) else value
        if (when.hour, when.minute, when.second) == (0, 0, 0):
            return when.strftime("%Y-%m-%d")
        return when.strftime("%Y-%m-%d %H:%M:%S" if when.second else "%Y-%m-%d %H:%M")
    return str(value)


def form_fields(
    kind: str, values: dict[str, Any], errors: dict[str, str] | None = None, *, from_record: bool = False
) -> list[FormField]:
    """The kind's inputs. `values` is a record (from_record) or what the form sent (kept as typed)."""
    errors = errors or {}
    fields: list[FormField] = []
    for name, info in editable_fields(kind):
        widget = _widget(name, info.default)
        value = _form_text(name, widget, values.get(name)) if from_record else values.get(name, "")
        choices: tuple[tuple[str, str], ...] = ()
        if widget == "categories":
            choices = _category_choices()
        elif widget == "choice":
            choices = tuple(CHOICE_FIELDS[name].items())
            value = value or str(info.default)
        fields.append(
            FormField(
                name=name,
                label=field_label(name),
                widget=widget,
                required=info.is_required(),
                value=value,
                error=errors.get(name, ""),
                hint=HINTS.get(name, ""),
                choices=choices,
            )
        )
    return fields


def typed_values(kind: str) -> dict[str, Any]:
    """What the form sent, as typed, to show again beside the errors."""
    typed: dict[str, Any] = {}
    for name, info in editable_fields(kind):
        widget = _widget(name, info.default)
        if widget == "categories":
            typed[name] = request.form.getlist(name)
        elif widget == "checkbox":
            typed[name] = name in request.form
        else:
            typed[name] = request.form.get(name, "")
    return typed


def record_from_form(kind: str) -> dict[str, Any]:
    """The record the form describes, for schemas to validate: blank is absent, lists are one item a line."""
    data: dict[str, Any] = {"kind": kind}
    for name, value in typed_values(kind).items():
        widget = _widget(name, dict(editable_fields(kind))[name].default)
        if widget == "lines":
            data[name] = [line.strip() for line in str(value).splitlines() if line.strip()]
        elif widget in ("categories", "checkbox"):
            data[name] = value
        elif widget in ("datetime", "number"):
            data[name] = value.strip() or None
        else:
            # "" rather than None: schemas reads a blank optional field as absent and says "空欄にはできません"
            # for a blank required one.
            data[name] = value.strip()
    return data


def split_errors(errors: list[FieldError]) -> tuple[dict[str, str], list[str]]:
    """Messages beside their field, and the summary list on top (labelled, so it reads on its own)."""
    by_field: dict[str, str] = {}
    summary: list[str] = []
    for error in errors:
        name = error.field.split(".")[0]
        if name and name in FIELD_LABELS | BASE_LABELS:
            by_field.setdefault(name, error.message)
            summary.append(f"{field_label(name)}: {error.message}")
        else:
            summary.append(error.message)
    return by_field, summary


# --- showing values and differences -------------------------------------------------------------------------


def display_value(name: str, value: Any) -> str:
    if value in (None, "", []):
        return "（なし）"
    if isinstance(value, list):
        items = [
            category_label(item) if name == "categories" and is_category(item) else str(item)
            for item in value
        ]
        return "、".join(items)
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if name in DATE_FIELDS:
        return format_datetime(value)
    if name == "severity":
        return SEVERITY_LABELS.get(value, str(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class FieldDiff:
    name: str
    label: str
    base: str
    current: str
    proposed: str
    changed_since: bool  # the record's value moved after the contributor's base revision
    segments: tuple[tuple[str, str], ...]  # ("same" | "del" | "ins", text), from current to proposed


def char_segments(old: str, new: str) -> tuple[tuple[str, str], ...]:
    """Character-level: Japanese has no spaces to split words on. The template escapes each piece."""
    segments: list[tuple[str, str]] = []
    for tag, a1, a2, b1, b2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            segments.append(("same", old[a1:a2]))
            continue
        if a2 > a1:
            segments.append(("del", old[a1:a2]))
        if b2 > b1:
            segments.append(("ins", new[b1:b2]))
    return tuple(segments)


def field_diffs(review: library_contributions.Review) -> list[FieldDiff]:
    diffs: list[FieldDiff] = []
    kind = review.current.get("kind", review.contribution.kind)
    for name, _ in editable_fields(kind):
        if name not in review.contribution.data:
            continue
        base = display_value(name, review.base.get(name))
        current = display_value(name, review.current.get(name))
        proposed = display_value(name, review.proposed.get(name))
        diffs.append(
            FieldDiff(
                name=name,
                label=field_label(name),
                base=base,
                current=current,
                proposed=proposed,
                changed_since=review.base.get(name) != review.current.get(name),
                segments=char_segments(current, proposed),
            )
        )
    return diffs


def record_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """A proposed new record, field by field, for the editor."""
    kind = data.get("kind", "")
    if kind not in KIND_MODELS:
        return []
    # Only what the contributor filled in: a new record's empty optional fields say nothing to decide on.
    return [
        (field_label(name), display_value(name, data.get(name)))
        for name, _ in editable_fields(kind)
        if data.get(name) not in (None, "", [])
    ]


# --- contributing -------------------------------------------------------------------------------------------


def _kind_choices() -> list[tuple[str, str]]:
    return [(kind, KIND_LABELS[kind]) for kind in CONTRIBUTABLE_KINDS]


@bp.route("/contribute", methods=["GET", "POST"])
@access(*ANY_ACCOUNT)
@limited(CONTRIBUTION_LIMIT, key="user", methods=["POST"])
def new() -> str | Response | tuple[str, int]:
    kind = request.values.get("kind", "")
    if kind not in CONTRIBUTABLE_KINDS:
        status = 400 if request.method == "POST" or kind else 200
        error = "投稿する種別を選んでください。" if status == 400 else ""
        return render_template(
            "contributions/new.html", kinds=_kind_choices(), kind=None, error=error
        ), status
    if request.method == "GET":
        return render_template(
            "contributions/new.html", kinds=_kind_choices(), kind=kind, fields=form_fields(kind, {}), note=""
        )
    note = request.form.get("note", "")
    try:
        contribution = library_contributions.submit_record(
            _store(), current_user.id, record_from_form(kind), note=note
        )
    except RecordValidationError as exc:
        by_field, summary = split_errors(exc.errors)
        return render_template(
            "contributions/new.html",
            kinds=_kind_choices(),
            kind=kind,
            fields=form_fields(kind, typed_values(kind), by_field),
            note=note,
            errors=summary,
        ), 400
    audit("contribution.submit", f"contribution:{contribution.id}", kind=kind)
    flash("投稿を受け付けました。編集者が確認してから掲載されます。")
    return redirect(url_for("contributions.mine"), 303)


def _published_record(record_id: str) -> Any:
    row = _library().get_record(record_id)
    if row is None or row.status != "published":
        abort(404, description="この記録は存在しないか、公開が終わっています。")
    return row


@bp.route("/records/<record_id>/suggest", methods=["GET", "POST"])
@access(*ANY_ACCOUNT)
@limited(CONTRIBUTION_LIMIT, key="user", methods=["POST"])
def suggest(record_id: str) -> str | Response | tuple[str, int]:
    row = _published_record(record_id)
    if request.method == "GET":
        return render_template(
            "contributions/suggest.html",
            row=row,
            base_revision=row.revision,
            fields=form_fields(row.kind, row.data, from_record=True),
            note="",
        )
    base_revision = request.form.get("base_revision", type=int) or row.revision
    note = request.form.get("note", "")
    errors: list[str] = []
    by_field: dict[str, str] = {}
    try:
        contribution = library_contributions.submit_edit(
            _store(),
            current_user.id,
            row.id,
            record_from_form(row.kind),
            base_revision=base_revision,
            note=note,
        )
    except RecordValidationError as exc:
        by_field, errors = split_errors(exc.errors)
    except NothingChanged as exc:
        errors = [str(exc)]
    except ContributionNotFound:
        abort(404)
    if errors:
        return render_template(
            "contributions/suggest.html",
            row=row,
            base_revision=base_revision,
            fields=form_fields(row.kind, typed_values(row.kind), by_field),
            note=note,
            errors=errors,
        ), 400
    audit("contribution.submit", f"contribution:{contribution.id}", record=row.id)
    flash("修正の提案を受け付けました。編集者が確認してから反映されます。")
    return redirect(url_for("contributions.mine"), 303)


@bp.get("/contributions/mine")
@access(*ANY_ACCOUNT)
def mine() -> tuple[str, int, dict[str, str]]:
    items = library_contributions.of_contributor(_store(), current_user.id)
    return (
        render_template("contributions/mine.html", items=items, statuses=STATUS_LABELS, title_of=title_of),
        200,
        {"Cache-Control": "no-store"},
    )


@bp.post("/contributions/<int:contribution_id>/withdraw")
@access(*ANY_ACCOUNT)
def withdraw(contribution_id: int) -> Response:
    try:
        library_contributions.withdraw(_store(), contribution_id, contributor_id=current_user.id)
    except ContributionNotFound:
        # Someone else's answers as if it did not exist, but the probe is recorded (T09).
        audit("contribution.withdraw", f"contribution:{contribution_id}", outcome="denied")
        abort(404)
    except AlreadyDecided as exc:
        flash(str(exc))
        return redirect(url_for("contributions.mine"), 303)
    audit("contribution.withdraw", f"contribution:{contribution_id}")
    flash("投稿を取り下げました。")
    return redirect(url_for("contributions.mine"), 303)


def title_of(contribution: Contribution) -> str:
    """A new record's title, or for an edit the record's (the proposal may not change the title)."""
    if contribution.data.get("title"):
        return str(contribution.data["title"])
    if contribution.record_id:
        row = _library().get_record(contribution.record_id)
        if row is not None:
            return row.title
    return contribution.record_id or ""


# --- moderating ---------------------------------------------------------------------------------------------


def in_scope(contribution: Contribution) -> bool:
    """An editor decides within their scope, on both the proposal and (for an edit) the record as it is."""
    store = _store()
    if not may_edit(current_user, library_contributions.proposed_data(store, contribution)):
        return False
    if contribution.is_edit and contribution.record_id:
        row = _library().get_record(contribution.record_id)
        return row is not None and may_edit(current_user, row.data)
    return True


def _in_scope_or_403(contribution_id: int) -> Contribution:
    contribution = library_contributions.get(_store(), contribution_id)
    if contribution is None:
        abort(404)
    if not in_scope(contribution):
        audit("access.denied", f"contribution:{contribution_id}", outcome="denied", reason="scope")
        abort(403)
    return contribution


@moderation_bp.get("")
@access(*EDITORS)
def queue() -> tuple[str, int, dict[str, str]]:
    items = [item for item in library_contributions.pending(_store()) if in_scope(item)]
    names = library_contributions.display_names(_store(), {item.contributor_id for item in items})
    return (
        render_template("moderation/queue.html", items=items, names=names, title_of=title_of),
        200,
        {"Cache-Control": "no-store"},
    )


def _review_page(
    contribution: Contribution, status: int = 200, **context: Any
) -> tuple[str, int, dict[str, str]]:
    store = _store()
    review = library_contributions.review(store, contribution)
    names = library_contributions.display_names(
        store,
        {contribution.contributor_id} | ({contribution.decided_by} if contribution.decided_by else set()),
    )
    return (
        render_template(
            "moderation/review.html",
            item=contribution,
            review=review,
            diffs=field_diffs(review) if review else [],
            rows=record_rows(contribution.data) if not contribution.is_edit else [],
            names=names,
            statuses=STATUS_LABELS,
            title=title_of(contribution),
            pending=contribution.status == ContributionStatus.PENDING.value,
            **context,
        ),
        status,
        {"Cache-Control": "no-store"},
    )


@moderation_bp.get("/<int:contribution_id>")
@access(*EDITORS)
def review(contribution_id: int) -> tuple[str, int, dict[str, str]]:
    return _review_page(_in_scope_or_403(contribution_id))


@moderation_bp.post("/<int:contribution_id>/accept")
@access(*EDITORS)
def accept(contribution_id: int) -> Response | tuple[str, int, dict[str, str]]:
    contribution = _in_scope_or_403(contribution_id)
    try:
        decision = library_contributions.accept(
            _library(),
            contribution_id,
            editor_id=current_user.id,
            reviewed_revision=request.form.get("reviewed_revision", type=int),
        )
    except AlreadyDecided as exc:
        return _decided_elsewhere(contribution_id, str(exc))
    except RecordChanged as exc:
        return _review_page(contribution, 409, errors=[str(exc)])
    except RecordValidationError as exc:
        _, summary = split_errors(exc.errors)
        return _review_page(
            contribution, 400, errors=["この提案はいまの記録には当てはめられません。", *summary]
        )
    audit(
        "contribution.accept",
        f"contribution:{contribution_id}",
        record=decision.record_id,
        revision=decision.revision,
    )
    flash(f"投稿 #{contribution_id} を承認しました。")
    return redirect(url_for("moderation.queue"), 303)


@moderation_bp.post("/<int:contribution_id>/reject")
@access(*EDITORS)
def reject(contribution_id: int) -> Response | tuple[str, int, dict[str, str]]:
    contribution = _in_scope_or_403(contribution_id)
    reason = request.form.get("reason", "")
    try:
        library_contributions.reject(_store(), contribution_id, editor_id=current_user.id, reason=reason)
    except ReasonRequired as exc:
        return _review_page(contribution, 400, errors=[str(exc)], reason=reason)
    except AlreadyDecided as exc:
        return _decided_elsewhere(contribution_id, str(exc))
    audit("contribution.reject", f"contribution:{contribution_id}", record=contribution.record_id)
    flash(f"投稿 #{contribution_id} を見送りました。理由は投稿した人に表示されます。")
    return redirect(url_for("moderation.queue"), 303)


def _decided_elsewhere(contribution_id: int, message: str) -> tuple[str, int, dict[str, str]]:
    """The other editor won: show the contribution as it was decided."""
    audit(
        "contribution.decide", f"contribution:{contribution_id}", outcome="failed", reason="already decided"
    )
    latest = library_contributions.get(_store(), contribution_id)
    assert latest is not None
    return _review_page(latest, 409, errors=[message])
