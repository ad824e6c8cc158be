"""Error responses: RFC 9457 problem details under /api, a small Japanese HTML page everywhere else.

Bodies are generic: an unexpected exception is logged with its traceback and answered with a fixed 500 text, so
no SQL, path or stack trace reaches a client (T18, T24). The HTML page is the template `error.html` (variables
`status`, `title`, `detail`) when the pages provide one, else a minimal inline page.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Flask, Response, current_app, render_template, request
from jinja2 import TemplateNotFound
from markupsafe import escape
from werkzeug.exceptions import HTTPException, InternalServerError

from indexer.engines.base import EngineError
from indexer.engines.breaker import RESET_TIMEOUT, CircuitOpenError
from indexer.search import QueryError

PROBLEM_MIMETYPE = "application/problem+json"
ERROR_TEMPLATE = "error.html"
RETRY_AFTER_SECONDS = round(RESET_TIMEOUT)  # after an engine failure: the circuit breaker's cool-down

TITLES = {
    400: "リクエストが正しくありません",
    401: "ログインが必要です",
    403: "この操作は許可されていません",
    404: "見つかりません",
    405: "この操作はできません",
    413: "リクエストが大きすぎます",
    414: "URL が長すぎます",
    429: "リクエストが多すぎます",
    500: "サーバーでエラーが発生しました",
    503: "一時的に利用できません",
}
DETAILS = {
    400: "リクエストの内容を確認してください。",
    401: "この操作にはログイン（API では有効な API キー）が必要です。",
    403: "この操作を行う権限がありません。必要な場合は管理者に依頼してください。",
    404: "お探しのページやデータは見つかりませんでした。URL を確認してください。",
    405: "この URL ではそのメソッドは使えません。",
    413: "送信されたデータが大きすぎます。",
    414: "URL が長すぎます。検索語を短くしてください。",
    429: "短い時間にリクエストが集中しました。しばらく待ってからもう一度お試しください。",
    500: "申し訳ありません。サーバーで予期しないエラーが発生しました。時間をおいてもう一度お試しください。",
    503: "検索エンジンが一時的に応答しません。しばらくしてからもう一度お試しください。",
}

_INLINE_PAGE = """<!doctype html>
<html lang="ja">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - 社会ライブラリ</title></head>
<body><main><h1>{title}</h1><p>{detail}</p><p><a href="/">社会ライブラリのトップへ</a></p></main></body>
</html>
"""


def title_for(status: int) -> str:
    return TITLES.get(status) or (TITLES[500] if status >= 500 else "リクエストを処理できません")


def detail_for(status: int) -> str:
    return DETAILS.get(status) or title_for(status) + "。"


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def problem(status: int, detail: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """An RFC 9457 problem. `type` is about:blank: the status says what kind of problem it is, and `title` is the
    status phrase in Japanese (the RFC allows localizing it)."""
    body = {
        "type": "about:blank",
        "title": title_for(status),
        "status": status,
        "detail": detail or detail_for(status),
        # The path as a URI reference: werkzeug hands it over decoded, possibly with spaces or control characters.
        "instance": quote(request.path, safe="/:@!$&'()*+,;="),
    }
    response = Response(
        current_app.json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_MIMETYPE
    )
    response.headers.update(headers or {})
    return response


def error_page(status: int, detail: str | None = None, headers: dict[str, str] | None = None) -> Response:
    title, detail = title_for(status), detail or detail_for(status)
    try:
        template = current_app.jinja_env.get_template(ERROR_TEMPLATE)
    except TemplateNotFound:
        html = _INLINE_PAGE.format(title=escape(title), detail=escape(detail))
    else:
        html = render_template(template, status=status, title=title, detail=detail)
    response = Response(html, status=status, mimetype="text/html")
    response.headers.update(headers or {})
    return response


def error_response(status: int, detail: str | None = None, headers: dict[str, str] | None = None) -> Response:
    if is_api_request():
        return problem(status, detail, headers)
    return error_page(status, detail, headers)


def _own_description(error: HTTPException) -> str | None:
    """The description given to abort(), if any; werkzeug's default descriptions are English and generic."""
    description = error.description
    return description if description and description != type(error).description else None


def handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    # Keep what the exception says about the protocol (Allow on 405, Retry-After on 429/503), not its body type.
    headers = {name: value for name, value in error.get_headers() if name.lower() != "content-type"}
    detail = _own_description(error) if status < 500 else None
    return error_response(status, detail, headers)


def handle_internal_error(error: InternalServerError) -> Response:
    # Flask has already logged the original exception with its traceback; the client gets the fixed text.
    return error_response(500)


def handle_query_error(error: QueryError) -> Response:
    # QueryError messages are written in Japanese for the user and name the parameter (indexer.search).
    return error_response(400, str(error))


def handle_engine_error(error: EngineError) -> Response:
    # The message may name hosts and ports: it goes to the log, the client gets the fixed text. An open circuit
    # breaker knows when it will let a call through again.
    current_app.logger.error("search engine failed: %s", error)
    retry_after = error.retry_after if isinstance(error, CircuitOpenError) else RETRY_AFTER_SECONDS
    return error_response(503, headers={"Retry-After": str(retry_after)})


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_internal_error)
    app.register_error_handler(QueryError, handle_query_error)
    app.register_error_handler(EngineError, handle_engine_error)
