"""Logging in and out, citizens' registration, one's own account, and accepting an invitation."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from indexer.store import UserRow
from indexer.store.curation import Role
from indexer.store.models import utcnow
from search_app.auth.accounts import (
    Account,
    check_login,
    create_user,
    find_by_email,
    hash_token,
    normalize_email,
    set_password,
)
from search_app.auth.audit import audit
from search_app.auth.passwords import password_problems, verify_password
from search_app.auth.policy import ANY_ACCOUNT, PUBLIC, access
from search_app.auth.sessions import ServerSession, hash_session_id, revoke_user_sessions

bp = Blueprint("auth", __name__)

LOGIN_FAILED = "メールアドレスまたはパスワードが違います。"


def _library():
    return current_app.extensions["library"]


def safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (open redirect), never a scheme-relative //host."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("search.index")
    return target


LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "[::1]"}


def cookie_cannot_be_kept() -> bool:
    """A Secure cookie over plain http to anything but loopback is dropped by the browser: say so, rather than
    let the login silently fail."""
    hostname = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    return (
        bool(current_app.config.get("SESSION_COOKIE_SECURE", True))
        and not request.is_secure
        and hostname not in LOOPBACK_HOSTS
        and not hostname.startswith("127.")
    )


def start_session(account: Account) -> None:
    """Log in with a fresh session id (fixation, T19) that remembers the role for the cookie's SameSite."""
    assert isinstance(session, ServerSession)
    session.regenerate()
    login_user(account)
    session["_role"] = account.role


@bp.route("/login", methods=["GET", "POST"])
@access(PUBLIC)
def login() -> str | Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(next_url)
        return render_template("auth/login.html", next_url=next_url, email="", insecure=cookie_cannot_be_kept())
    email = request.form.get("email", "")[:320]
    password = request.form.get("password", "")[:1024]
    result = check_login(_library().store, email, password)
    if result.locked_for:
        audit("login.locked", normalize_email(email), outcome="denied")
        message = "ログインの失敗が続いたため、しばらくログインできません。少し待ってからお試しください。"
        return (
            render_template("auth/login.html", next_url=next_url, email=email, error=message),
            429,
            {"Retry-After": str(result.locked_for)},
        )
    if result.account is None:
        audit("login.failed", normalize_email(email), outcome="failed")
        # 200, not 401: 401 is an HTTP authentication challenge (WWW-Authenticate), not a form's verdict.
        return render_template("auth/login.html", next_url=next_url, email=email, error=LOGIN_FAILED), 200
    start_session(result.account)
    audit("login", f"user:{result.account.id}")
    return redirect(next_url)


@bp.post("/logout")
@access(*ANY_ACCOUNT)
def logout() -> Response:
    audit("logout", f"user:{current_user.id}")
    logout_user()
    assert isinstance(session, ServerSession)
    session.end()
    return redirect(url_for("search.index"))


@bp.route("/register", methods=["GET", "POST"])
@access(PUBLIC)
def register() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return render_template("auth/register.html", form={})
    form = {name: request.form.get(name, "").strip() for name in ("email", "display_name")}
    password = request.form.get("password", "")
    errors: list[str] = []
    if "@" not in form["email"] or len(form["email"]) > 320:
        errors.append("メールアドレスを正しく入力してください。")
    if not form["display_name"] or len(form["display_name"]) > 100:
        errors.append("表示名を100文字以内で入力してください。")
    if password != request.form.get("password_confirm", ""):
        errors.append("確認用のパスワードが一致しません。")
    errors += password_problems(password, email=form["email"], display_name=form["display_name"])
    if not errors:
        with _library().store.session() as db:
            if find_by_email(db, form["email"]) is not None:
                errors.append("このメールアドレスはすでに登録されています。ログインしてください。")
            else:
                row = create_user(
                    db, email=form["email"], display_name=form["display_name"], role=Role.CITIZEN, password=password
                )
                account = Account.of(row)
    if errors:
        return render_template("auth/register.html", form=form, errors=errors), 400
    start_session(account)
    audit("account.register", f"user:{account.id}")
    return redirect(url_for("auth.account"))


@bp.get("/account")
@access(*ANY_ACCOUNT)
def account() -> str:
    return render_template("auth/account.html")


@bp.post("/account/password")
@access(*ANY_ACCOUNT)
def change_password() -> str | Response | tuple[str, int]:
    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    store = _library().store
    errors: list[str] = []
    with store.session() as db:
        row = db.get(UserRow, current_user.id)
        if row is None or not verify_password(row.password_hash, current):
            errors.append("現在のパスワードが違います。")
        elif new != request.form.get("new_password_confirm", ""):
            errors.append("確認用のパスワードが一致しません。")
        else:
            errors += password_problems(new, email=row.email, display_name=row.display_name)
        if not errors:
            set_password(db, row, new)
    if errors:
        audit("account.password", f"user:{current_user.id}", outcome="failed")
        return render_template("auth/account.html", errors=errors), 400
    # Every other session of the account ends; this one continues under a new id.
    assert isinstance(session, ServerSession)
    keep = hash_session_id(session.session_id) if session.session_id else None
    revoke_user_sessions(store, current_user.id, except_id_hash=keep)
    session.regenerate()
    audit("account.password", f"user:{current_user.id}")
    flash("パスワードを変更しました。ほかの端末のログインは終了しました。")
    return redirect(url_for("auth.account"))


@bp.route("/invite", methods=["GET", "POST"])
@access(PUBLIC)
def accept_invitation() -> str | Response | tuple[str, int]:
    # The token travels in the query string or the form, never in the path: access logs record paths.
    token = request.values.get("token", "")[:200]
    store = _library().store
    with store.session(readonly=True) as db:
        row = db.scalar(select(UserRow).where(UserRow.invite_hash == hash_token(token)))
        valid = row is not None and row.invite_expires_at is not None and row.invite_expires_at > utcnow()
    if not valid or row is None or row.disabled:
        abort(404, "招待リンクが無効か、期限が切れています。管理者に新しい招待を依頼してください。")
    if request.method == "GET":
        return render_template("auth/invite.html", token=token, user=row)
    password = request.form.get("password", "")
    errors = password_problems(password, email=row.email, display_name=row.display_name)
    if password != request.form.get("password_confirm", ""):
        errors.insert(0, "確認用のパスワードが一致しません。")
    if errors:
        return render_template("auth/invite.html", token=token, user=row, errors=errors), 400
    with store.session() as db:
        fresh = db.get(UserRow, row.id)
        assert fresh is not None
        if fresh.invite_hash != hash_token(token):  # used meanwhile: single use
            abort(404, "招待リンクはすでに使われています。")
        set_password(db, fresh, password)
        account = Account.of(fresh)
    revoke_user_sessions(store, account.id)
    start_session(account)
    audit("account.invitation_accepted", f"user:{account.id}")
    return redirect(url_for("auth.account"))
