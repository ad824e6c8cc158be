"""A first search page; the full citizens' UI and JSON API grow from here."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from markupsafe import Markup

from indexer.engines.base import EngineError
from indexer.search import Query, QueryError
from search_app import get_library

bp = Blueprint("search", __name__)


@bp.get("/")
def index() -> str | tuple[str, int]:
    text = request.args.get("q", "")
    results = error = None
    if text:
        try:
            results = get_library(current_app).search(Query(text=text))
        except QueryError as exc:
            error = str(exc)
        except EngineError:
            error = "検索エンジンが応答しません。しばらくしてからもう一度お試しください。"
    # Snippets come from make_snippet, which escapes the text before adding <mark>: safe to mark as markup.
    return render_template("index.html", q=text, results=results, error=error, Markup=Markup)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
