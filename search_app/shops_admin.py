"""Admin pages for participating shops and their API keys (issue 5; T21, T23).

A key's plaintext exists only in the response that issues it: the table keeps its SHA-256 (policy.issue_api_key),
the page shows a prefix to tell keys apart. Revoking takes effect on the key's next request, since every request
looks the key up. Every change is in the audit log, never with the key itself.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from indexer.store import ApiKeyRow, ShopRow
from indexer.store.models import utcnow
from search_app import get_library
from search_app.auth.audit import audit
from search_app.auth.policy import ADMIN, access, issue_api_key

bp = Blueprint("shops_admin", __name__, url_prefix="/admin")

MAX_NAME = 200
MAX_LABEL = 200


def _store():
    return get_library(current_app).store


def _page(status: int = 200, **context: Any) -> tuple[str, int]:
    with _store().session(readonly=True) as db:
        shops = list(db.scalars(select(ShopRow).order_by(ShopRow.id)))
        keys = list(db.scalars(select(ApiKeyRow).order_by(ApiKeyRow.shop_id, ApiKeyRow.id)))
    keys_by_shop: dict[int, list[ApiKeyRow]] = {}
    for key in keys:
        keys_by_shop.setdefault(key.shop_id, []).append(key)
    return render_template("admin/shops.html", shops=shops, keys_by_shop=keys_by_shop, **context), status


@bp.get("/shops")
@access(ADMIN)
def shops() -> tuple[str, int]:
    return _page()


@bp.post("/shops")
@access(ADMIN)
def create_shop() -> Response | tuple[str, int]:
    name = request.form.get("name", "").strip()
    if not name or len(name) > MAX_NAME:
        return _page(400, errors=[f"店舗名を {MAX_NAME} 文字以内で入力してください。"])
    with _store().session() as db:
        if db.scalar(select(ShopRow.id).where(ShopRow.name == name)) is not None:
            return _page(400, errors=["同じ名前の店舗がすでにあります。"])
        shop = ShopRow(name=name)
        db.add(shop)
        db.flush()
        shop_id = shop.id
    audit("shop.create", f"shop:{shop_id}", name=name)
    flash(f"店舗「{name}」を登録しました。")
    return redirect(url_for("shops_admin.shops"))


@bp.post("/shops/<int:shop_id>/keys")
@access(ADMIN)
def issue_key(shop_id: int) -> tuple[str, int]:
    label = request.form.get("label", "").strip()
    if len(label) > MAX_LABEL:
        return _page(400, errors=[f"ラベルは {MAX_LABEL} 文字以内で入力してください。"])
    with _store().session() as db:
        shop = db.get(ShopRow, shop_id)
        if shop is None:
            abort(404)
        row, plaintext = issue_api_key(db, shop_id, label=label, created_by=current_user.id)
        key_id, prefix, shop_name = row.id, row.prefix, shop.name
    audit("api_key.issue", f"api-key:{key_id}", shop_id=shop_id, prefix=prefix)
    # The only time the key is shown: not stored, not flashed into the session, not cacheable.
    html, status = _page(201, new_key=plaintext, new_key_shop=shop_name, new_key_prefix=prefix)
    return html, status, {"Cache-Control": "no-store"}  # type: ignore[return-value]


@bp.post("/keys/<int:key_id>/revoke")
@access(ADMIN)
def revoke_key(key_id: int) -> Response:
    with _store().session() as db:
        key = db.get(ApiKeyRow, key_id)
        if key is None:
            abort(404)
        already = key.revoked_at is not None
        if not already:
            key.revoked_at = utcnow()
        prefix, shop_id = key.prefix, key.shop_id
    if not already:
        audit("api_key.revoke", f"api-key:{key_id}", shop_id=shop_id, prefix=prefix)
    flash(f"API キー {prefix}… を無効にしました。このキーでの次のリクエストから拒否されます。")
    return redirect(url_for("shops_admin.shops"))


@bp.post("/shops/<int:shop_id>/status")
@access(ADMIN)
def set_shop_status(shop_id: int) -> Response:
    """Stop a shop (its keys and its staff's form are refused at once, its notices stay) or let it resume."""
    disable = request.form.get("disabled") == "1"
    with _store().session() as db:
        shop = db.get(ShopRow, shop_id)
        if shop is None:
            abort(404)
        changed = shop.disabled != disable
        shop.disabled = disable
        name = shop.name
    if changed:
        audit("shop.disable" if disable else "shop.enable", f"shop:{shop_id}", name=name)
    flash(f"店舗「{name}」を{'停止しました。API キーと店舗の画面は使えなくなります' if disable else '再開しました'}。")
    return redirect(url_for("shops_admin.shops"))
