"""Admin pages for accounts: invite, change role and scope, disable, end sessions; and the audit log."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from indexer.store import ShopRow, UserRow
from indexer.store.curation import Role
from schemas import is_category
from search_app.auth.accounts import create_user, find_by_email, issue_invitation
from search_app.auth.audit import audit, recent_events
from search_app.auth.policy import ADMIN, access
from search_app.auth.sessions import revoke_user_sessions

bp = Blueprint("admin_users", __name__, url_prefix="/admin")

ROLE_LABELS = {"citizen": "市民", "editor": "編集者（NPO）", "shop": "店舗", "admin": "管理者"}


def _store():
    return current_app.extensions["library"].store


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace("、", ",").replace("\n", ",").split(",") if part.strip()]


def _scopes(form) -> tuple[list[str], list[str], list[str]]:
    categories = _split(form.get("scope_categories", ""))
    organizations = _split(form.get("scope_organizations", ""))
    errors = [f"カテゴリ「{c}」はありません。" for c in categories if not is_category(c)]
    return categories, organizations, errors


def _users_page(status: int = 200, **context):
    with _store().session(readonly=True) as db:
        users = list(db.scalars(select(UserRow).order_by(UserRow.id)))
        shops = list(db.scalars(select(ShopRow).order_by(ShopRow.id)))
    return render_template("admin/users.html", users=users, shops=shops, roles=ROLE_LABELS, **context), status


@bp.get("/users")
@access(ADMIN)
def users():
    return _users_page()


@bp.post("/users")
@access(ADMIN)
def invite() -> Response | tuple[str, int]:
    form = request.form
    email, name, role = form.get("email", "").strip(), form.get("display_name", "").strip(), form.get("role", "")
    categories, organizations, errors = _scopes(form)
    if "@" not in email or len(email) > 320:
        errors.append("メールアドレスを正しく入力してください。")
    if not name or len(name) > 100:
        errors.append("表示名を100文字以内で入力してください。")
    if role not in ROLE_LABELS:
        errors.append("役割を選んでください。")
    shop_id = form.get("shop_id", type=int) if role == Role.SHOP else None
    if role == Role.SHOP and shop_id is None:
        errors.append("店舗の役割には店舗を選んでください。")
    with _store().session() as db:
        if not errors and find_by_email(db, email) is not None:
            errors.append("このメールアドレスのアカウントはすでにあります。")
        if shop_id is not None and db.get(ShopRow, shop_id) is None:
            errors.append("その店舗はありません。")
        if errors:
            db.rollback()
        else:
            row = create_user(
                db,
                email=email,
                display_name=name,
                role=role,
                scope_categories=categories,
                scope_organizations=organizations,
                shop_id=shop_id,
            )
            token = issue_invitation(row)
            user_id = row.id
    if errors:
        return _users_page(400, errors=errors)
    audit("user.invite", f"user:{user_id}", role=role)
    invite_url = url_for("auth.accept_invitation", token=token, _external=True)
    return _users_page(201, invite_url=invite_url, invited_email=email)


@bp.post("/users/<int:user_id>")
@access(ADMIN)
def update_user(user_id: int) -> Response | tuple[str, int]:
    form = request.form
    categories, organizations, errors = _scopes(form)
    role = form.get("role", "")
    if role not in ROLE_LABELS:
        errors.append("役割を選んでください。")
    if user_id == current_user.id and (role != Role.ADMIN or form.get("disabled")):
        errors.append("自分自身の管理者権限は外せません。")
    if errors:
        return _users_page(400, errors=errors)
    disabled = bool(form.get("disabled"))
    with _store().session() as db:
        row = db.get(UserRow, user_id)
        if row is None:
            abort(404)
        changed = {"role": (row.role, role), "disabled": (row.disabled, disabled)}
        row.role, row.disabled = role, disabled
        row.scope_categories, row.scope_organizations = categories, organizations
        if role == Role.SHOP:
            row.shop_id = form.get("shop_id", type=int) or row.shop_id
    # A changed role or a disabled account must not live on in open sessions.
    if changed["role"][0] != role or disabled:
        revoke_user_sessions(_store(), user_id)
    audit("user.update", f"user:{user_id}", role=role, disabled=disabled)
    flash("アカウントを更新しました。")
    return redirect(url_for("admin_users.users"))


@bp.post("/users/<int:user_id>/sessions/revoke")
@access(ADMIN)
def revoke_sessions(user_id: int) -> Response:
    count = revoke_user_sessions(_store(), user_id)
    audit("user.revoke_sessions", f"user:{user_id}", sessions=count)
    flash(f"{count} 件のログインを終了しました。")
    return redirect(url_for("admin_users.users"))


@bp.post("/users/<int:user_id>/invitation")
@access(ADMIN)
def reinvite(user_id: int) -> tuple[str, int]:
    with _store().session() as db:
        row = db.get(UserRow, user_id)
        if row is None:
            abort(404)
        token = issue_invitation(row)
        email = row.email
    audit("user.reinvite", f"user:{user_id}")
    invite_url = url_for("auth.accept_invitation", token=token, _external=True)
    return _users_page(200, invite_url=invite_url, invited_email=email)


@bp.get("/audit")
@access(ADMIN)
def audit_log() -> str:
    prefix = request.args.get("action", "").strip()[:64] or None
    return render_template("admin/audit.html", events=recent_events(300, action_prefix=prefix), action=prefix or "")
