"""Accounts, sessions, CSRF, rate limits and per-route access policies (issue 5; T09, T19–T22).

For route authors:

- every view declares who may call it: `@access(PUBLIC)`, `@access(*EDITORS)`, `@access(ADMIN)`,
  `@access(SHOP_KEY)` (bearer API key, no cookies) … from `search_app.auth.policy`; an undeclared route is refused;
- every HTML form that POSTs carries `<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">`; the
  `/api/` routes are exempt from CSRF because they authenticate only by bearer key and never by cookie;
- `current_user` (Flask-Login) is an `Account` with `id`, `role`, `display_name`, scopes and `shop_id`;
  `may_edit(current_user, record_data)` applies an editor's scope;
- state changes are recorded with `audit(action, target, **detail)` from `search_app.auth.audit`;
- a view's own rate limit is declared with `@limited("20/hour", key="user")` from `search_app.auth.ratelimit`
  (keys: "ip", "user", "api_key"); it is applied with the others when the app is set up (after blueprints).

Tests log in with the fixtures in tests/search_app/conftest.py: `make_user(role, ...)` and `login(client, user)`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import BadRequest
from werkzeug.middleware.proxy_fix import ProxyFix

from search_app.auth import admin, ratelimit, views
from search_app.auth.accounts import load_account
from search_app.auth.policy import (  # noqa: F401  (the API route authors import from here)
    ADMIN,
    ANY_ACCOUNT,
    CITIZEN,
    EDITOR,
    EDITORS,
    PUBLIC,
    SHOP,
    SHOP_KEY,
    access,
    enforce,
    may_edit,
    policy_of,
)
from search_app.auth.sessions import SqlSessionInterface

csrf = CSRFProtect()
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FAILED = "フォームの有効期限が切れたか、正しくない送信です。ページを読み込み直してから、もう一度送信してください。"


# The account menu: (endpoint, label, roles), shown when the endpoint exists and the user has the role.
NAV_LINKS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("contributions.new", "情報を投稿", ANY_ACCOUNT),
    ("contributions.mine", "自分の投稿", ANY_ACCOUNT),
    ("moderation.queue", "投稿の確認", EDITORS),
    ("shop_notices.new", "緊急のお知らせを出す", (SHOP, ADMIN)),
    ("admin_ingest.uploads", "アップロード", EDITORS),
    ("search.zero_results", "0件の検索", EDITORS),
    ("admin_ingest.sources", "情報源", (ADMIN,)),
    ("shops_admin.shops", "店舗とAPIキー", (ADMIN,)),
    ("admin_users.users", "アカウント管理", (ADMIN,)),
)


def nav_links() -> list[tuple[str, str]]:
    if not current_user.is_authenticated:
        return []
    return [
        (endpoint, label)
        for endpoint, label, roles in NAV_LINKS
        if current_user.role in roles and endpoint in current_app.view_functions
    ]


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(views.bp)
    app.register_blueprint(admin.bp)


def reject_cross_site() -> None:
    """A state change from another site is refused even before the token is checked (T20)."""
    if request.method not in UNSAFE_METHODS or request.path.startswith("/api/"):
        return
    origin = request.headers.get("Origin")
    # The host, not the scheme: behind a TLS proxy the app may see http while the browser says https.
    if (
        request.headers.get("Sec-Fetch-Site") == "cross-site"
        or origin == "null"
        or (origin and urlsplit(origin).netloc.lower() != request.host.lower())
    ):
        from search_app.auth.audit import audit

        audit("csrf.cross_site", f"{request.method} {request.path}", outcome="denied", origin=origin or "")
        raise BadRequest(CSRF_FAILED)


def no_store_for_accounts(response: Response) -> Response:
    """T18: nothing shown to a logged-in person, and no page behind a login, is kept by a browser or proxy cache:
    such pages carry names, e-mail addresses and one-time links. Static files stay cacheable."""
    if request.endpoint == "static":
        return response
    policy = policy_of(current_app, request.endpoint) if request.endpoint else None
    if current_user.is_authenticated or (policy is not None and PUBLIC not in policy):
        response.headers["Cache-Control"] = "no-store"
    return response


def ensure_secret_key(app: Flask, data_dir: Path) -> None:
    """LIBRARY_FLASK_SECRET_KEY in production (signs CSRF tokens); the embedded default makes one on first start
    and keeps it in the data directory, readable by its owner only, so `make run` needs no setup."""
    if app.config.get("SECRET_KEY"):
        return
    path = data_dir / "secret_key"
    if not path.exists():
        # Written whole to a private file, then linked into place: of several processes starting at once
        # (gunicorn workers), one link wins and every process reads that complete key.
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    app.config["SECRET_KEY"] = path.read_text().strip()


def init_app(app: Flask) -> None:
    """Call last in create_app: the access check and the rate limits attach to every registered route."""
    library = app.extensions["library"]
    ensure_secret_key(app, Path(library.settings.data_dir))
    hops = int(app.config.get("PROXY_HOPS") or 0)
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.session_interface = SqlSessionInterface(library.store)

    login_manager = LoginManager()
    login_manager.session_protection = None  # the server-side session already is the protection
    login_manager.user_loader(lambda user_id: load_account(library.store, user_id))
    login_manager.init_app(app)

    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 3600)
    # Flask-WTF's Referer check only runs on https; reject_cross_site covers plain http too.
    app.before_request(reject_cross_site)
    csrf.init_app(app)
    for name in ("api", "notices_api"):  # bearer keys only, never cookies (module docstring)
        api_blueprint = app.blueprints.get(name)
        if api_blueprint is not None:
            csrf.exempt(api_blueprint)
    app.register_error_handler(CSRFError, lambda error: _csrf_error())
    app.before_request(enforce)
    app.after_request(no_store_for_accounts)
    app.context_processor(lambda: {"nav_links": nav_links, "ROLE_LABELS": admin.ROLE_LABELS})
    ratelimit.init_app(app, library.settings.broker_url)


def _csrf_error():
    from search_app.auth.audit import audit
    from search_app.errors import error_response

    audit("csrf.refused", f"{request.method} {request.path}", outcome="denied")  # a forged or stale form (T30)

    return error_response(400, CSRF_FAILED)
