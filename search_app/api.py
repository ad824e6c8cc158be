"""The public JSON API under /api/v1, and its OpenAPI document at /api/openapi.json.

Errors are RFC 9457 problem details (search_app.errors). Parameters are read by `search_app.params`, the same code
as the HTML pages, so a URL means the same thing in both.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

import jaconv
import orjson
from flask import Blueprint, Flask, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from indexer.analysis.analyzer import is_kana
from indexer.analysis.normalize import normalize_text
from indexer.engines.base import EngineQuery, TermClause
from indexer.library import Library
from indexer.search import QueryError, term_clause
from schemas import KIND_LABELS, PROVENANCE_LABELS
from search_app import get_library
from search_app.errors import problem
from search_app.notices import pinned_notices
from search_app.openapi import (
    MAX_SUGGEST_CHARS,
    MAX_SUGGESTIONS,
    SUGGESTIONS_MIMETYPE,
    build_openapi,
)
from search_app.params import query_from_args
from search_app.searchlog import frequent_completions, log_search
from search_app.auth.policy import PUBLIC, access

bp = Blueprint("api", __name__, url_prefix="/api")

# Suggestions: what many others searched and found first, then completed words (the most frequent in titles),
# then whole titles that contain the input.
FREQUENT_SLOTS = 3
TERM_SLOTS = 6
TITLE_CANDIDATES = 10


@bp.record_once
def _setup(state: BlueprintSetupState) -> None:
    state.app.extensions["openapi"] = _dumps(state.app, build_openapi())  # built once, served as is


# Types orjson would write its own way go to Flask's provider, as with app.json (dates as HTTP dates).
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dumps(app: Flask, body: Any) -> bytes:
    """UTF-8 JSON, Japanese as it is rather than \\uXXXX escapes (a third of the size, and readable).

    orjson writes a search page in a tenth of json.dumps's time (6 against 78 µs for ten articles).
    Keys keep their order, so a page reads total, hits, facets. Anything it refuses (an integer beyond 64
    bits) goes through Flask's provider instead."""
    try:
        return orjson.dumps(body, default=app.json.default, option=_ORJSON_OPTIONS)  # type: ignore[attr-defined]
    except TypeError:  # orjson.JSONEncodeError is one
        return app.json.dumps(body, ensure_ascii=False).encode()


def json_response(body: Any, status: int = 200, mimetype: str = "application/json") -> Response:
    return Response(_dumps(current_app, body), status=status, mimetype=mimetype)


@bp.get("/openapi.json")
@access(PUBLIC)
def openapi() -> Response:
    return Response(current_app.extensions["openapi"], mimetype="application/json")


@bp.get("/v1/ping")
@access(PUBLIC)
def ping() -> Response:
    return json_response({"status": "ok"})


@bp.get("/v1/search")
@access(PUBLIC)
def search() -> Response:
    library = get_library(current_app)
    query = query_from_args(request.args)
    results = current_app.extensions["result_cache"].search(library, query)
    log_search(library, query, results)
    encoded = results.encoded(lambda body: _dumps(current_app, body))
    pinned = _dumps(current_app, pinned_notices(library, query, terms=results.terms))  # per request: they expire
    return Response(b"".join((encoded[:-1], b',"pinned":', pinned, b"}")), mimetype="application/json")


@bp.get("/v1/records/<record_id>")
@access(PUBLIC)
def record(record_id: str) -> Response:
    row = get_library(current_app).get_record(record_id)
    if row is None or row.status != "published":
        # Unpublished records (pending, retracted, expired) are indistinguishable from missing ones.
        return problem(404, f"レコード「{record_id}」は見つからないか、公開されていません。")
    body = {
        **row.data,
        "revision": row.revision,
        "kind_label": KIND_LABELS.get(row.kind, row.kind),
        "provenance_label": PROVENANCE_LABELS.get(row.data["provenance"], row.data["provenance"]),
    }
    return json_response(body)


@bp.get("/v1/suggest")
@access(PUBLIC)
def suggest() -> Response:
    text = request.args.get("q", "")
    if len(text) > MAX_SUGGEST_CHARS:
        raise QueryError(f"候補を出す文字列が長すぎます（{MAX_SUGGEST_CHARS} 文字まで）")
    fmt = request.args.get("fmt")
    if fmt is None:
        accepted = request.accept_mimetypes.best_match(["application/json", SUGGESTIONS_MIMETYPE])
        fmt = "opensearch" if accepted == SUGGESTIONS_MIMETYPE else "json"
    if fmt not in ("json", "opensearch"):
        raise QueryError("形式（fmt）は json または opensearch で指定してください")
    found = suggestions(get_library(current_app), text)
    if fmt == "opensearch":
        response = json_response([text, found], mimetype=SUGGESTIONS_MIMETYPE)
    else:
        response = json_response({"q": text, "suggestions": found})
    response.vary.add("Accept")
    return response


# --- suggestions ------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    # Control and format characters mean nothing in a search box and are not valid in every backend.
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def _completions(library: Library, word: str) -> list[str]:
    """Title terms that start with `word`, most frequent first; kana input also completes readings."""
    prefix = word.lower()  # tokens are lowercase
    found = library.engine.suggest("title_c", prefix, MAX_SUGGESTIONS)
    found += library.engine.suggest("title_a", prefix, MAX_SUGGESTIONS)
    if is_kana(word):
        found += library.engine.suggest("title_r", jaconv.hira2kata(word), MAX_SUGGESTIONS)
    return _unique(term for term, _ in sorted(found, key=lambda item: -item[1]))


def _titles(library: Library, words: list[str]) -> list[str]:
    """Titles containing every word as typed (a phrase over the title's character bigrams)."""
    clauses = []
    for word in words:
        clause = term_clause(library.analyzer.phrase(word))
        in_title = tuple(match for match in clause.alternatives if match.field == "title_b")
        if in_title:
            clauses.append((TermClause(in_title),))
    if not clauses:
        return []
    found = library.engine.search(EngineQuery(must=tuple(clauses), limit=TITLE_CANDIDATES, facets=()))
    return _unique(hit.document.title for hit in found.hits)


def suggestions(library: Library, text: str) -> list[str]:
    """Up to MAX_SUGGESTIONS strings for a search box: frequent successful searches that start like the input
    (searchlog.py), the last word completed, then matching titles."""
    cleaned = _clean(text)
    words = normalize_text(cleaned).split()
    if not words:
        return []
    popular = frequent_completions(library, cleaned, FREQUENT_SLOTS)
    if text[-1:].isspace():
        return popular  # a next word is wanted: only whole searches can offer one
    head = " ".join(words[:-1])
    completed = [f"{head} {term}" if head else term for term in _completions(library, words[-1])]
    titles = _titles(library, words)
    return _unique([*popular, *completed[:TERM_SLOTS], *titles, *completed[TERM_SLOTS:]])[:MAX_SUGGESTIONS]
