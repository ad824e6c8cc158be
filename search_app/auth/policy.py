"""Who may call which route (T09): every endpoint declares a policy, and the app refuses any that does not.

    @bp.get("/records/<record_id>/edit")
    @access(*EDITORS)
    def edit(record_id): ...

`access(PUBLIC)` lets anyone in; `access(role, ...)` needs a logged-in account with one of the roles; `access(SHOP_KEY)`
needs a shop's bearer API key in the Authorization header and ignores cookies. The check runs in one
before_request hook, so a route without a declared policy is refused (deny by default) rather than forgotten,
and tests/search_app/auth/test_permissions.py builds its matrix from `app.url_map`.

Not logged in: pages redirect to the login form, the API answers 401 problem details. Logged in without the role:
403, and a `denied` audit event (ASVS 16.3.2).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select, update
from werkzeug.wrappers import Response

from indexer.store import ApiKeyRow, ShopRow
from indexer.store.curation import Role
from indexer.store.models import utcnow

PUBLIC = "public"
SHOP_KEY = "shop_key"
CITIZEN, EDITOR, SHOP, ADMIN = (role.value for role in Role)
EDITORS = (EDITOR, ADMIN)
ANY_ACCOUNT = (CITIZEN, EDITOR, SHOP, ADMIN)
POLICIES = {PUBLIC, SHOP_KEY, *ANY_ACCOUNT}
# Endpoints Flask itself adds.
BUILTIN_POLICIES = {"static": frozenset({PUBLIC})}

API_KEY_PREFIX = "slk_"
# "Last used" on the admin page is kept to the minute, so a busy key writes at most once a minute.
LAST_USED_PRECISION = timedelta(minutes=1)

View = TypeVar("View", bound=Callable[..., Any])


def access(*policies: str) -> Callable[[View], View]:
    unknown = set(policies) - POLICIES
    if not policies or unknown:
        raise ValueError(f"access(): unknown or missing policies {sorted(unknown) or '(none)'}")
    if (PUBLIC in policies or SHOP_KEY in policies) and len(policies) > 1:
        raise ValueError("access(): PUBLIC and SHOP_KEY stand alone")

    def declare(view: View) -> View:
        view._access = frozenset(policies)  # type: ignore[attr-defined]
        return view

    return declare


def policy_of(app: Flask, endpoint: str | None) -> frozenset[str] | None:
    if endpoint is None:
        return None
    if endpoint in BUILTIN_POLICIES:
        return BUILTIN_POLICIES[endpoint]
    view = app.view_functions.get(endpoint)
    return getattr(view, "_access", None)


def _is_api() -> bool:
    return request.path.startswith("/api/")


def enforce() -> Response | None:
    """The before_request hook: let the request through, or refuse it."""
    if request.endpoint is None:  # 404 / 405: nothing to protect, Flask answers
        return None
    policy = policy_of(current_app, request.endpoint)
    if policy is None:
        current_app.logger.error("route %s has no access policy: refused", request.endpoint)
        abort(403)
    if PUBLIC in policy:
        return None
    if SHOP_KEY in policy:
        key = api_key_from_request()
        if key is None:
            from search_app.auth.audit import audit
            from search_app.errors import problem

            audit("api_key.refused", request.path, outcome="denied")
            detail = "有効な API キーを「Authorization: Bearer キー」の形で送ってください（無効にされたキーは使えません）。"
            abort(problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="library"'}))
        g.api_key = key
        return None
    if not current_user.is_authenticated:
        from search_app.auth.audit import audit, security_log

        if _is_api() or request.method not in ("GET", "HEAD"):
            # A change attempted without logging in is a refused access (T30); written to the audit log.
            audit("access.unauthenticated", f"{request.method} {request.path}", outcome="denied")
            abort(401)
        # A page read without a session is sent to log in: logged, but not a row each time (crawlers try /admin).
        security_log.info("login required: %s %s", request.method, request.path.replace("\r", "").replace("\n", ""))
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if current_user.role not in policy:
        from search_app.auth.audit import audit

        audit("access.denied", f"{request.method} {request.path}", outcome="denied")
        abort(403)
    return None


# --- shop API keys --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    id: int
    shop_id: int
    prefix: str
    scopes: tuple[str, ...] = field(default=())


def hash_api_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8", "replace")).hexdigest()


def issue_api_key(
    db: Any, shop_id: int, *, label: str = "", scopes: Iterable[str] = ("notices"), created_by: int | None = None
) -> tuple[ApiKeyRow, str]:
    """A new key for a shop, in the caller's transaction. The plaintext is returned once and never stored."""
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits
    row = ApiKeyRow(
        shop_id=shop_id,
        key_hash=hash_api_key(plaintext),
        prefix=plaintext[: len(API_KEY_PREFIX) + 6],
        label=label,
        scopes=list(scopes) if not isinstance(scopes, str) else [scopes],
        created_by=created_by,
    )
    db.add(row)
    db.flush()
    return row, plaintext


def api_key_from_request() -> ApiKey | None:
    """The live key in `Authorization: Bearer …`, or None. Checked on every request, so a revoke takes effect on
    the next one (T23)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(API_KEY_PREFIX) or len(token) > 200:
        return None
    library = current_app.extensions["library"]
    now = utcnow()
    # Read-only: a write transaction per API request would queue every shop behind SQLite's single writer.
    with library.store.session(readonly=True) as db:
        row = db.execute(
            select(ApiKeyRow.id, ApiKeyRow.shop_id, ApiKeyRow.prefix, ApiKeyRow.scopes, ApiKeyRow.last_used_at)
            .join(ShopRow, ShopRow.id == ApiKeyRow.shop_id)
            .where(
                ApiKeyRow.key_hash == hash_api_key(token),
                ApiKeyRow.revoked_at.is_(None),
                ShopRow.disabled.is_(False),
            )
        ).one_or_none()
    if row is None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
        with library.store.session() as db:
            db.execute(update(ApiKeyRow).where(ApiKeyRow.id == row.id).values(last_used_at=now))
    return ApiKey(id=row.id, shop_id=row.shop_id, prefix=row.prefix, scopes=tuple(row.scopes or ()))


# --- editors' scopes ------------------------------------------------------------------------------------------


def may_edit(user: Any, data: dict[str, Any]) -> bool:
    """An admin edits anything; an editor anything within their scope (no scope: everything); nobody else."""
    role = getattr(user, "role", None)
    if role == ADMIN:
        return True
    if role != EDITOR:
        return False
    categories = set(getattr(user, "scope_categories", ()) or ())
    organizations = set(getattr(user, "scope_organizations", ()) or ())
    if not categories and not organizations:
        return True
    record_categories = set(data.get("categories") or ())
    # A scoped category covers its sub-categories ("food" covers "food.allergy").
    in_category = any(c == s or c.startswith(s + ".") for c in record_categories for s in categories)
    record_organizations = {data.get(name) for name in ("organization", "organizer", "maker") if data.get(name)}
    return in_category or bool(record_organizations & organizations)
