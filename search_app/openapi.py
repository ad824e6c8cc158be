"""The OpenAPI 3.1 document of the public API, built from the same constants the code validates with.

Limits, sort orders and the record schema come from `indexer.search`, `search_app.params` and `schemas`, so the
document cannot drift from what the server accepts; tests check that it lists exactly the /api routes (and
schemathesis checks every response against it, T24).
"""

from __future__ import annotations

import json
from typing import Any

from indexer.engines.base import FACET_FIELDS, SORT_ORDERS
from indexer.notices import MAX_BODY_CHARS, MAX_CODES, REQUIRED_FIELDS, SHOP_FIELDS, SHOP_NOTICE_ID_PATTERN
from indexer.search import MAX_FILTER_VALUES, MAX_PAGE, MAX_PAGE_SIZE
from schemas import KIND_LABELS, KINDS, PROVENANCE_LABELS
from schemas.export import record_json_schema
from schemas.records import ID_PATTERN
from search_app.params import DEFAULT_PAGE_SIZE, FILTER_PARAMS, MAX_QUERY_PARAM_CHARS

MAX_SUGGEST_CHARS = 100
MAX_SUGGESTIONS = 10
SUGGESTIONS_MIMETYPE = "application/x-suggestions+json"
PROBLEM_MIMETYPE = "application/problem+json"

_FILTER_HELP = {
    "kind": "種別（" + "、".join(f"{kind}={label}" for kind, label in KIND_LABELS.items()) + "）",
    "category": "カテゴリ ID（例: safety.recall）",
    "organization": "組織名",
    "region": "地域名",
    "provenance": "情報源（" + "、".join(f"{p}={label}" for p, label in PROVENANCE_LABELS.items()) + "）",
    "year": "公開年（例: 2026）",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _links(parameter: str, expression: str, **targets: str) -> dict[str, Any]:
    """OpenAPI links (name → operationId) passing one value of a response on as `parameter`: clients and the
    stateful fuzzing (T24) follow them from one call to the next."""
    return {name: {"operationId": target, "parameters": {parameter: expression}} for name, target in targets.items()}


def _problem(description: str, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_MIMETYPE: {"schema": _ref("Problem")}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {
                "description": "再試行までの秒数",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    return response


def _query_param(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        **extra,
    }


def _filter_param(name: str) -> dict[str, Any]:
    # Unknown values are allowed and simply match nothing; a comma inside one value would split it in two. The
    # limit counts distinct non-blank values, which JSON Schema cannot say, so it is stated in words only.
    return _query_param(
        name,
        f"{_FILTER_HELP[name]}。繰り返すか、カンマ区切りで複数指定（いずれかに一致、{MAX_FILTER_VALUES} 種類まで）",
        {"type": "array", "items": {"type": "string", "pattern": "^[^,]*$"}},
        style="form",
        explode=True,
    )


# The search page's form sends every field, empty ones included, and an empty value means "not given".
_EMPTY = {"type": "string", "maxLength": 0}


def _or_empty(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, _EMPTY]}


def _search_parameters() -> list[dict[str, Any]]:
    date = _or_empty({"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]})
    return [
        _query_param(
            "q",
            '検索語。空白区切りはすべてを含む、"…" はフレーズ、-語 は除外、A OR B はどちらか',
            {"type": "string", "maxLength": MAX_QUERY_PARAM_CHARS},
        ),
        *(_filter_param(name) for name in FILTER_PARAMS),
        _query_param("from", "期間の開始（公開日またはイベント日。日付のみなら日本時間の 0 時）", date),
        _query_param("to", "期間の終了（日付のみならその日の終わりまで）", date),
        _query_param(
            "sort",
            "並び順: relevance=関連度、newest=新しい順、event=開催日順",
            _or_empty({"type": "string", "enum": list(SORT_ORDERS), "default": "relevance"}),
        ),
        _query_param(
            "page",
            "ページ番号",
            _or_empty({"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}),
        ),
        _query_param(
            "size",
            "1 ページの件数",
            _or_empty(
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}
            ),
        ),
    ]


def _search_schemas() -> dict[str, Any]:
    timestamp = _nullable({"type": "string", "format": "date-time"})
    text_or_null = _nullable({"type": "string"})
    hit = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string", "enum": list(KINDS)},
            "title": {"type": "string"},
            "url": text_or_null,
            "snippet": {
                "type": "string",
                "description": "HTML エスケープ済みの抜粋。一致箇所は <mark> で囲む",
            },
            "score": {"type": "number"},
            "provenance": {"type": "string", "enum": list(PROVENANCE_LABELS)},
            "organization": text_or_null,
            "region": text_or_null,
            "categories": {"type": "array", "items": {"type": "string"}},
            "published_at": timestamp,
            "event_at": timestamp,
            "verified_at": timestamp,
            "details": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    hit["required"] = list(hit["properties"])
    facet_value = {
        "type": "object",
        "additionalProperties": False,
        "required": ["value", "label", "count"],
        "properties": {
            "value": {"type": "string"},
            "label": {"type": "string"},
            "count": {"type": "integer", "minimum": 0},
        },
    }
    results = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "total": {"type": "integer", "minimum": 0},
            "took_ms": {"type": "number", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "size": {"type": "integer", "minimum": 1},
            "relaxed": {
                "type": "boolean",
                "description": "すべての語を含むものがなく、いずれかの語を含むものを表示しているとき true",
            },
            "hits": {"type": "array", "items": _ref("Hit"), "maxItems": MAX_PAGE_SIZE},
            "facets": {
                "type": "object",
                "additionalProperties": False,
                "properties": {name: {"type": "array", "items": _ref("FacetValue")} for name in FACET_FIELDS},
            },
            "pinned": {
                "type": "array",
                "description": "検索条件に合う有効な緊急のお知らせ（結果の上に固定表示する）。レコードそのもの",
                "items": _ref("NoticeRecord"),
            },
        },
    }
    results["required"] = list(results["properties"])
    return {"Hit": hit, "FacetValue": facet_value, "SearchResults": results}


def _record_schemas() -> dict[str, Any]:
    """Each kind's record JSON Schema as is (`NoticeRecord`, …), and `Public…` copies with the revision and the
    Japanese labels the record endpoint adds; `PublicRecord` is any of those."""
    exported = record_json_schema()
    # The record schema's own "#/$defs/X" references become component references.
    text = json.dumps(
        {"defs": exported["$defs"], "discriminator": exported["discriminator"]}, ensure_ascii=False
    )
    moved = json.loads(text.replace('"#/$defs/', '"#/components/schemas/'))
    extra = {
        "revision": {"type": "integer", "minimum": 1, "description": "版数（更新されるたびに 1 増える）"},
        "kind_label": {"type": "string", "enum": list(KIND_LABELS.values())},
        "provenance_label": {"type": "string", "enum": list(PROVENANCE_LABELS.values())},
    }
    components = dict(moved["defs"])
    for name, schema in moved["defs"].items():
        components[f"Public{name}"] = {
            **schema,
            "properties": {**schema["properties"], **extra},
            "required": [*schema.get("required", []), *extra],
        }
    discriminator = moved["discriminator"]
    components["PublicRecord"] = {
        "title": exported["title"],
        "oneOf": [_ref(f"Public{name}") for name in moved["defs"]],
        "discriminator": {
            "propertyName": discriminator["propertyName"],
            "mapping": {
                kind: ref.replace("/schemas/", "/schemas/Public")
                for kind, ref in discriminator["mapping"].items()
            },
        },
    }
    return components


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 9457 problem details。detail は日本語で、画面にそのまま表示できる",
        "required": ["type", "title", "status", "detail", "instance"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "format": "uri-reference"},
        },
    }


def _suggest_schemas() -> dict[str, Any]:
    words = {"type": "array", "items": {"type": "string"}, "maxItems": MAX_SUGGESTIONS}
    return {
        "Suggestions": {
            "type": "object",
            "additionalProperties": False,
            "required": ["q", "suggestions"],
            "properties": {"q": {"type": "string"}, "suggestions": words},
        },
        # [input, [suggestions…]]. Written without prefixItems, which schemathesis 4.32 rejects in responses.
        "OpenSearchSuggestions": {
            "description": "OpenSearch Suggestions 形式: [入力, [候補…]]",
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"anyOf": [{"type": "string"}, words]},
        },
    }


def _paths() -> dict[str, Any]:
    default = _problem("その他のエラー（405、429、500 など）")
    return {
        "/api/v1/search": {
            "get": {
                "operationId": "search",
                "summary": "レコードを検索する",
                "parameters": _search_parameters(),
                "responses": {
                    "200": {**_json(_ref("SearchResults"), "検索結果"), "links": _links(
                        "record_id", "$response.body#/hits/0/id", GetFirstHit="getRecord")},
                    "400": _problem("パラメータが正しくない"),
                    "503": _problem("検索エンジンが一時的に応答しない", retry_after=True),
                    "default": default,
                },
            }
        },
        "/api/v1/records/{record_id}": {
            "get": {
                "operationId": "getRecord",
                "summary": "公開中のレコードを 1 件取得する",
                "parameters": [
                    {
                        "name": "record_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": ID_PATTERN},
                    }
                ],
                "responses": {
                    "200": _json(_ref("PublicRecord"), "レコード"),
                    "404": _problem("レコードがない、または公開されていない"),
                    "default": default,
                },
            }
        },
        "/api/v1/suggest": {
            "get": {
                "operationId": "suggest",
                "summary": "検索語の候補（よく検索され結果のあった語、入力途中の語の補完、タイトル）",
                "description": (
                    f"Accept: {SUGGESTIONS_MIMETYPE} または fmt=opensearch のときは OpenSearch Suggestions 形式で返す"
                ),
                "parameters": [
                    _query_param("q", "入力中の文字列", {"type": "string", "maxLength": MAX_SUGGEST_CHARS}),
                    _query_param("fmt", "応答の形式", {"type": "string", "enum": ["json", "opensearch"]}),
                ],
                "responses": {
                    "200": {
                        "description": f"候補（最大 {MAX_SUGGESTIONS} 件）",
                        "content": {
                            "application/json": {"schema": _ref("Suggestions")},
                            SUGGESTIONS_MIMETYPE: {"schema": _ref("OpenSearchSuggestions")},
                        },
                    },
                    "400": _problem("パラメータが正しくない"),
                    "503": _problem("検索エンジンが一時的に応答しない", retry_after=True),
                    "default": default,
                },
            }
        },
        "/api/v1/ping": {
            "get": {
                "operationId": "ping",
                "summary": "死活確認（負荷試験の基準にもする軽い応答）",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "ok"}},
                        },
                        "稼働中",
                    ),
                    "default": default,
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "この API の OpenAPI 文書",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 文書"), "default": default},
            }
        },
    }


# --- the shop notice API (search_app.notices_api): bearer keys, JSON bodies ------------------------------------

_BEARER = [{"bearerAuth": []}]


def _notice_field_schemas() -> dict[str, Any]:
    """The fields a shop sends, as the notice record's schema states them."""
    notice = record_json_schema()["$defs"]["NoticeRecord"]["properties"]
    text = json.dumps({name: notice[name] for name in SHOP_FIELDS}, ensure_ascii=False)
    fields = json.loads(text.replace('"#/$defs/', '"#/components/schemas/'))
    fields["body"] = {**fields["body"], "maxLength": MAX_BODY_CHARS}
    for name in ("jan_codes", "model_numbers", "lot_numbers"):
        fields[name] = {**fields[name], "maxItems": MAX_CODES}
    return fields


def _notice_schemas() -> dict[str, Any]:
    fields = _notice_field_schemas()
    notice_id = {"type": "string", "pattern": SHOP_NOTICE_ID_PATTERN, "description": "店舗が付けるお知らせ ID（再送しても重複しない）"}
    timestamp = {"type": "string", "format": "date-time"}
    report = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "shop_notice_id": notice_id,
            "status": {"type": "string", "enum": ["active", "retracted"], "description": "この報告の状態"},
            "record_id": {"type": "string", "pattern": ID_PATTERN, "description": "まとめられたお知らせのレコード ID"},
            "notice_status": {
                "type": "string",
                "enum": ["published", "expired", "retracted"],
                "description": "お知らせ（レコード）の状態",
            },
            "revision": {"type": "integer", "minimum": 1},
            "reported_by": {"type": "array", "items": {"type": "string"}, "description": "報告した店舗"},
            "notice": {"type": "object", "properties": fields, "description": "この店舗が送った内容（正規化済み）"},
            "created_at": timestamp,
            "updated_at": timestamp,
            "retracted_at": _nullable(timestamp),
            "record_url": {"type": "string", "format": "uri"},
        },
    }
    report["required"] = list(report["properties"])
    return {
        "ShopNoticeInput": {
            "type": "object",
            "additionalProperties": False,
            "required": ["shop_notice_id", *REQUIRED_FIELDS],
            "properties": {"shop_notice_id": notice_id, **fields},
        },
        "ShopNoticePatch": {
            "type": "object",
            "description": (
                "JSON Merge Patch（RFC 7396）: 送った項目だけを変える。null はその項目を消す（必須項目は消せない）。"
                "shop_notice_id は送るならパスと同じ値（変更はできない）"
            ),
            "additionalProperties": False,
            "properties": {
                "shop_notice_id": notice_id,
                **{name: schema if name in REQUIRED_FIELDS else _nullable(schema) for name, schema in fields.items()},
            },
        },
        "ShopNotice": report,
        "ValidationProblem": {
            "allOf": [
                _ref("Problem"),
                {
                    "type": "object",
                    "required": ["errors"],
                    "properties": {
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "message"],
                                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                            },
                        }
                    },
                },
            ]
        },
    }


def _notice_operation(operation_id: str, summary: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    responses = {
        **ok,
        "401": _problem("API キーがない、または無効"),
        "403": _problem("API キーにお知らせの権限（notices）がない"),
        "429": _problem("API キーごとのリクエスト数の上限を超えた", retry_after=True),
        "default": _problem("その他のエラー"),
    }
    return {"operationId": operation_id, "summary": summary, "security": _BEARER, **extra,
            "responses": dict(sorted(responses.items(), key=lambda item: item[0] == "default"))}  # fmt: skip


def _notice_paths() -> dict[str, Any]:
    report = {**_json(_ref("ShopNotice"), "お知らせの報告"), "links": _links(
        "shop_notice_id", "$response.body#/shop_notice_id",
        GetNotice="getNotice", UpdateNotice="updateNotice", RetractNotice="retractNotice")}
    path_id = [{"name": "shop_notice_id", "in": "path", "required": True,
                "schema": {"type": "string", "pattern": SHOP_NOTICE_ID_PATTERN}}]  # fmt: skip
    not_found = {"404": _problem("自分の店舗のこの ID の報告がない（ほかの店舗の報告も 404）")}
    invalid = {
        "400": _problem("JSON として読めない"),
        "409": _problem("ID がすでに別の内容で使われている、または取り下げ済み"),
        "413": _problem("本文が大きすぎる"),
        "415": _problem("Content-Type が JSON でない"),
        "422": {
            "description": "入力内容に誤りがある（項目ごとの日本語のメッセージ）",
            "content": {PROBLEM_MIMETYPE: {"schema": _ref("ValidationProblem")}},
        },
    }
    return {
        "/api/v1/notices": {
            "post": _notice_operation(
                "submitNotice",
                "緊急のお知らせを送る（同じ ID の再送は 200 で同じ内容を返す）",
                {"200": report, "201": {**report, "headers": {"Location": {"schema": {"type": "string"}}}}, **invalid},
                requestBody={"required": True, "content": {"application/json": {"schema": _ref("ShopNoticeInput")}}},
            )
        },
        "/api/v1/notices/{shop_notice_id}": {
            "get": _notice_operation("getNotice", "自分の店舗の報告を取得する", {"200": report, **not_found},
                                     parameters=path_id),
            "patch": _notice_operation(
                "updateNotice",
                "自分の店舗の報告を更新する（JSON Merge Patch）",
                {"200": report, **not_found, **invalid},
                parameters=path_id,
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("ShopNoticePatch")},
                        "application/merge-patch+json": {"schema": _ref("ShopNoticePatch")},
                    },
                },
            ),
        },
        "/api/v1/notices/{shop_notice_id}/retract": {
            "post": _notice_operation("retractNotice", "自分の店舗の報告を取り下げる（ほかに報告がなければお知らせも）",
                                      {"200": report, **not_found}, parameters=path_id),
        },
    }  # fmt: skip


def build_openapi() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "社会ライブラリ API",
            "version": "1.0.0",
            "description": (
                "地域のお知らせ・リコール、商品、催し、施設などを日本語で検索する公開 API。"
                "エラーは RFC 9457 の problem details（application/problem+json）で、detail は日本語。"
            ),
        },
        "paths": {**_paths(), **_notice_paths()},
        "components": {
            "schemas": {
                "Problem": _problem_schema(),
                **_search_schemas(),
                **_suggest_schemas(),
                **_record_schemas(),
                **_notice_schemas(),
            },
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "管理者が店舗ごとに発行する API キー"},
            },
        },
    }
