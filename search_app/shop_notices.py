"""The shop staff's form for urgent notices (issue 5): the same library calls as the API, for people.

A shop account acts for its own shop only; an admin chooses the shop. The form carries a random notice id made
when the page is drawn, so a double click or a browser resend of the same form is one notice, not two (the
idempotency of `indexer.notices.submit_notice`).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from indexer.notices import (
    NoticeConflict,
    NoticeNotFound,
    NoticeValidationError,
    list_notices,
    retract_notice,
    submit_notice,
)
from indexer.store import ShopRow
from schemas import JST, SEVERITY_LABELS, STATUS_LABELS
from search_app import get_library
from search_app.auth.audit import audit
from search_app.auth.policy import ADMIN, SHOP, access
from search_app.views import FIELD_LABELS

bp = Blueprint("shop_notices", __name__, url_prefix="/shop/notices")

TEXT_FIELDS = ("title", "maker", "product", "hazard", "action", "contact", "url", "valid_until", "severity")
CODE_FIELDS = ("jan_codes", "model_numbers", "lot_numbers")
LABELS = FIELD_LABELS | {"title": "タイトル", "url": "詳しい情報の URL", "shop_notice_id": "お知らせ ID", "": "お知らせ"}
DEFAULT_VALID_DAYS = 30
# Codes are typed one per line, or separated by commas (half or full width) or spaces.
_CODE_SEPARATORS = re.compile(r"[\s,、，]+")


def _new_notice_id() -> str:
    return f"form-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(6)}"


def _shops() -> list[ShopRow]:
    with get_library(current_app).store.session(readonly=True) as db:
        return list(db.scalars(select(ShopRow).where(ShopRow.disabled.is_(False)).order_by(ShopRow.id)))


def _acting_shop(form: MultiDict[str, str] | None = None) -> int:
    """The shop the user acts for: a shop account's own; the one an admin chose (400 without a choice)."""
    if current_user.role == SHOP:
        if current_user.shop_id is None:
            abort(403, "このアカウントには店舗が登録されていません。管理者に連絡してください。")
        return current_user.shop_id
    shop_id = (form or request.args).get("shop_id", type=int)
    if shop_id is None:
        abort(400, "店舗を選んでください。")
    return shop_id


def payload_from_form(form: MultiDict[str, str]) -> dict[str, Any]:
    payload: dict[str, Any] = {name: form.get(name, "").strip() for name in TEXT_FIELDS if form.get(name, "").strip()}
    for name in CODE_FIELDS:
        codes = [code for code in _CODE_SEPARATORS.split(form.get(name, "")) if code]
        if codes:
            payload[name] = codes
    return payload


def _messages(error: NoticeValidationError) -> list[str]:
    messages = []
    for item in error.errors:
        name, _, index = item.field.partition(".")
        label = LABELS.get(name, name)
        position = f"（{int(index) + 1} つ目）" if index.isdigit() else ""
        messages.append(f"{label}{position}: {item.message}")
    return messages


def _form_page(status: int = 200, **context: Any) -> tuple[str, int]:
    values = context.pop("values", None) or MultiDict()
    default_until = (datetime.now(JST) + timedelta(days=DEFAULT_VALID_DAYS)).strftime("%Y-%m-%dT%H:%M")
    return render_template(
        "shop_notices/new.html",
        values=values,
        notice_id=values.get("shop_notice_id") or _new_notice_id(),
        default_until=default_until,
        severities=SEVERITY_LABELS,
        labels=LABELS,
        shops=_shops() if current_user.role == ADMIN else [],
        **context,
    ), status


@bp.get("/new")
@access(SHOP, ADMIN)
def new() -> tuple[str, int]:
    if current_user.role == SHOP:
        _acting_shop()  # a shop account without a shop cannot send anything: say so now, not after typing
    return _form_page()


@bp.post("/new")
@access(SHOP, ADMIN)
def create() -> Response | tuple[str, int]:
    form = request.form
    shop_id = _acting_shop(form)
    shop_notice_id = form.get("shop_notice_id", "").strip() or _new_notice_id()
    try:
        outcome = submit_notice(get_library(current_app), shop_id, shop_notice_id, payload_from_form(form))
    except NoticeValidationError as error:
        return _form_page(400, values=form, errors=_messages(error))
    except NoticeConflict as error:
        return _form_page(409, values=form, errors=[str(error)])
    except NoticeNotFound:
        return _form_page(400, values=form, errors=["その店舗はありません（停止中の店舗からは送れません）。"])
    if outcome.created:
        audit("notice.submit", f"notice-report:{shop_id}/{shop_notice_id}", record_id=outcome.report.record_id)
        flash("緊急のお知らせを公開しました。検索結果の上に掲載期限まで表示されます。")
    else:
        flash("このお知らせはすでに公開されています。")
    return redirect(url_for("shop_notices.mine", **({"shop_id": shop_id} if current_user.role == ADMIN else {})))


@bp.get("")
@access(SHOP, ADMIN)
def mine() -> str:
    # An admin sees every shop's reports, or one shop's with ?shop_id=.
    shop_id = _acting_shop() if current_user.role == SHOP else request.args.get("shop_id", type=int)
    reports = list_notices(get_library(current_app), shop_id)
    with get_library(current_app).store.session(readonly=True) as db:
        names = dict(db.execute(select(ShopRow.id, ShopRow.name)).all())
    return render_template(
        "shop_notices/mine.html", reports=reports, shop_names=names, status_labels=STATUS_LABELS,
        severities=SEVERITY_LABELS, is_admin=current_user.role == ADMIN,
    )  # fmt: skip


@bp.post("/<shop_notice_id>/retract")
@access(SHOP, ADMIN)
def retract(shop_notice_id: str) -> Response:
    shop_id = _acting_shop(request.form)
    try:
        report = retract_notice(get_library(current_app), shop_id, shop_notice_id)
    except NoticeNotFound:
        abort(404)
    audit("notice.retract", f"notice-report:{shop_id}/{shop_notice_id}", record_id=report.record_id,
          notice_status=report.notice_status)  # fmt: skip
    flash("お知らせを取り下げました。" if report.notice_status != "published"
          else "お知らせを取り下げました（ほかの店舗からも報告があるため、お知らせ自体は掲載が続きます）。")  # fmt: skip
    return redirect(url_for("shop_notices.mine", **({"shop_id": shop_id} if current_user.role == ADMIN else {})))
