"""The shop notice API (issue 5, T23): shops push urgent maker notices with their bearer API key.

    POST  /api/v1/notices                           201 + Location; 200 with the same body on a retry
    GET   /api/v1/notices/<shop_notice_id>          the shop's own report only (another shop's: 404)
    PATCH /api/v1/notices/<shop_notice_id>          JSON Merge Patch of the report
    POST  /api/v1/notices/<shop_notice_id>/retract  withdraw it

Every route is `@access(SHOP_KEY)`: the key is checked on every request (a revoked key is refused on the next
one), never a cookie, so the blueprint is exempt from CSRF; each key gets the shop API rate limit (ratelimit.py).
The work is `indexer.notices`; this module is HTTP: content types, status codes and problem details.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, g, request, url_for

from indexer.notices import (
    NoticeConflict,
    NoticeNotFound,
    NoticeReport,
    NoticeValidationError,
    check_shop_notice_id,
    get_notice,
    retract_notice,
    submit_notice,
    update_notice,
)
from schemas import FieldError
from search_app import get_library
from search_app.auth.audit import audit
from search_app.auth.policy import SHOP_KEY, access
from search_app.errors import problem

bp = Blueprint("notices_api", __name__, url_prefix="/api/v1")

NOTICES_SCOPE = "notices"
JSON_TYPES = ("application/json",)
PATCH_TYPES = ("application/json", "application/merge-patch+json")
# A notice is a few kilobytes; at most ~45,000 characters fit its field limits (indexer.notices), under 300 KiB even
# with every character escaped in JSON. A body beyond this is refused before it is read (413).
MAX_NOTICE_BYTES = 512 * 1024

NOT_FOUND = "このお知らせ ID の報告は見つかりません。参照・変更できるのは自分の店舗の報告だけです。"


def _dumps(body: Any) -> str:
    return current_app.json.dumps(body, ensure_ascii=False)


def _report_response(report: NoticeReport, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = report.to_json()
    body["record_url"] = url_for("search.record", record_id=report.record_id, _external=True)
    return Response(_dumps(body), status=status, mimetype="application/json", headers=headers)


def _validation_problem(error: NoticeValidationError) -> Response:
    """422 with the Japanese message of every field, and the list as an `errors` extension member (RFC 9457 §3.2)."""
    listed = "、".join(f"{e.field or '本文'}（{e.message}）" for e in error.errors)
    response = problem(422, f"入力内容に誤りがあります: {listed}")
    body = json.loads(response.get_data(as_text=True))
    body["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    response.set_data(_dumps(body))
    return response


def _read_json(allowed: tuple[str, ...]) -> tuple[Any, Response | None]:
    """The request's JSON body, or the problem to answer instead (415, 413, 400)."""
    if request.mimetype not in allowed:
        return None, problem(415, f"本文は JSON で、Content-Type: {allowed[0]} を付けて送ってください。")
    # Lower than the app's MAX_CONTENT_LENGTH for these routes: werkzeug answers 413 before reading the body.
    request.max_content_length = min(MAX_NOTICE_BYTES, current_app.config.get("MAX_CONTENT_LENGTH") or MAX_NOTICE_BYTES)
    body = request.get_json(silent=True)
    if body is None:
        return None, problem(400, "本文を JSON として読めませんでした。UTF-8 の JSON オブジェクトを送ってください。")
    if not isinstance(body, dict):
        return None, _validation_problem(
            NoticeValidationError([FieldError("", "本文は JSON オブジェクト（キーと値の組）にしてください")])
        )
    return body, None


def _shop_id() -> int | None:
    """The key's shop, when the key may handle notices."""
    key = g.api_key
    return key.shop_id if NOTICES_SCOPE in key.scopes else None


def _forbidden() -> Response:
    return problem(403, "この API キーにはお知らせを送る権限（notices）がありません。")


def _target(shop_notice_id: str) -> str:
    return f"notice-report:{g.api_key.shop_id}/{shop_notice_id}"


@bp.post("/notices")
@access(SHOP_KEY)
def create_notice() -> Response:
    shop_id = _shop_id()
    if shop_id is None:
        return _forbidden()
    body, refused = _read_json(JSON_TYPES)
    if refused is not None:
        return refused
    fields = dict(body)
    shop_notice_id = fields.pop("shop_notice_id", None)
    try:
        outcome = submit_notice(get_library(current_app), shop_id, shop_notice_id, fields)
    except NoticeValidationError as error:
        return _validation_problem(error)
    except NoticeConflict as error:
        return problem(409, str(error))
    except NoticeNotFound:
        return problem(403, "この API キーの店舗は利用できません。")
    report = outcome.report
    location = url_for("notices_api.read_notice", shop_notice_id=report.shop_notice_id)
    if not outcome.created:
        return _report_response(report, 200, {"Location": location})
    audit("notice.submit", _target(report.shop_notice_id), record_id=report.record_id)
    return _report_response(report, 201, {"Location": location})


@bp.get("/notices/<shop_notice_id>")
@access(SHOP_KEY)
def read_notice(shop_notice_id: str) -> Response:
    shop_id = _shop_id()
    if shop_id is None:
        return _forbidden()
    try:
        return _report_response(get_notice(get_library(current_app), shop_id, shop_notice_id))
    except NoticeNotFound:
        return problem(404, NOT_FOUND)


@bp.patch("/notices/<shop_notice_id>")
@access(SHOP_KEY)
def patch_notice(shop_notice_id: str) -> Response:
    shop_id = _shop_id()
    if shop_id is None:
        return _forbidden()
    body, refused = _read_json(PATCH_TYPES)
    if refused is not None:
        return refused
    try:
        report = update_notice(get_library(current_app), shop_id, shop_notice_id, body)
    except NoticeNotFound:
        return problem(404, NOT_FOUND)
    except NoticeValidationError as error:
        return _validation_problem(error)
    except NoticeConflict as error:
        return problem(409, str(error))
    audit("notice.update", _target(shop_notice_id), record_id=report.record_id, fields=sorted(body))
    return _report_response(report)


@bp.post("/notices/<shop_notice_id>/retract")
@access(SHOP_KEY)
def retract(shop_notice_id: str) -> Response:
    shop_id = _shop_id()
    if shop_id is None:
        return _forbidden()
    try:
        check_shop_notice_id(shop_notice_id)
        report = retract_notice(get_library(current_app), shop_id, shop_notice_id)
    except (NoticeNotFound, NoticeValidationError):
        return problem(404, NOT_FOUND)
    audit("notice.retract", _target(shop_notice_id), record_id=report.record_id, notice_status=report.notice_status)
    return _report_response(report)
