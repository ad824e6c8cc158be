"""T24: 10,000 hostile queries never fail the search: the library answers every one, and the API answers 200 or a
400 problem, never 5xx.

The queries come from benchmarks/hostile_corpus.py (loaded by path: benchmarks/ is scripts, not a package), the
same generator benchmarks/hostile_queries.py times; the 500 ms per query target is its business, not a test's.
Most queries run through `indexer.search.search`, a share of them and the hand-written cases through the HTTP
layer (parameters, the search log, pinned notices, the error handlers), so the whole set fits in about a minute
on the 2-core CI machine.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask.testing import FlaskClient

from indexer.search import Query, search
from search_app import get_library

from .conftest import AppFactory

CORPUS = Path(__file__).resolve().parents[2] / "benchmarks" / "hostile_corpus.py"
QUERIES = 10_000
HTTP_SHARE = 5  # every fifth generated query, and every hand-written one, goes through the API
# Other parameters sent along with some queries: out of range, malformed or injected (400s, and a few 200s).
EXTRA_PARAMS = [
    ("page", "0"), ("page", "-1"), ("page", "1001"), ("page", "1e9"), ("page", "２"), ("size", "0"),
    ("size", "101"), ("size", "abc"), ("size", "\x00"), ("sort", "'; DROP TABLE records; --"), ("sort", "newest"),
    ("sort", "ＮＥＷＥＳＴ"), ("from", "2026-13-45"), ("from", "0000-00-00"), ("to", "9999-12-31T99:99"),
    ("from", "2026-05-01"), ("to", "2026-04-01"), ("kind", ",".join(["notice"] * 25)), ("kind", "notice\x00"),
    ("category", "<script>"), ("organization", "\u202e株式会社"), ("year", "二〇二六"), ("region", "*"),
]  # fmt: skip
# Query strings that are not valid UTF-8 once decoded: lone surrogates, overlong forms, cut sequences.
RAW_QUERY_STRINGS = [
    "q=%ED%A0%80", "q=%ED%BF%BF%E5%9B%B3", "q=%FF%FE", "q=%C0%AF", "q=%E3%81", "q=%F4%90%80%80", "q=%F0%9F",
    "q=%00%00", "q=%", "q=%%32%30", "q=%ZZ", "q=a&q=b", "q=", "q", "&&&", "q=%E3%80%8C%E5%9B%B3&sort=%FF",
]  # fmt: skip
_MARK = re.compile(r"</?mark>")


def hostile_corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hostile_corpus", CORPUS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def escaped_problems(snippet: str) -> list[str]:
    """Markup in a snippet other than the highlights' own <mark> and </mark>."""
    return ["markup in a snippet"] if "<" in _MARK.sub("", snippet) else []


def problems_of(response: Any) -> list[str]:
    status = response.status_code
    if status == 200:
        if response.content_type != "application/json; charset=utf-8":
            return [f"200 as {response.content_type}"]
        body = response.get_json()
        if not isinstance(body.get("total"), int):
            return ["200 without a total"]
        return [problem for hit in body["hits"] for problem in escaped_problems(hit["snippet"])]
    if status != 400:
        return [f"status {status}"]
    if response.content_type != "application/problem+json; charset=utf-8":
        return [f"400 as {response.content_type}"]
    body = response.get_json(force=True)
    if set(body) != {"type", "title", "status", "detail", "instance"} or body["status"] != 400:
        return [f"400 body {body}"]
    if not any("\u3040" <= ch <= "\u9fff" for ch in body["detail"]) or "Traceback" in body["detail"]:
        return [f"400 detail {body['detail']!r}"]
    return []


def http_query_string(text: str, number: int) -> str:
    # surrogatepass: a lone surrogate goes out as the bytes a careless client would send (%ED%A0%80).
    query = "q=" + quote(text, safe="", errors="surrogatepass")
    if number % 7 == 0:
        name, value = EXTRA_PARAMS[(number // 7) % len(EXTRA_PARAMS)]
        query += "&" + urlencode({name: value})
    return query


@pytest.mark.slow
def test_ten_thousand_hostile_queries_are_answered_never_failed(make_app: AppFactory) -> None:
    corpus = hostile_corpus()
    queries = list(corpus.hostile_queries(QUERIES))
    assert len(queries) == len(set(queries)) == QUERIES
    assert list(corpus.hostile_queries(300)) == queries[:300]  # deterministic: a prefix is the same queries
    hand_written = len(corpus.fixed_queries())

    app = make_app(RATELIMIT_ENABLED=False)  # one test client is one address: 60 searches a minute otherwise
    library = get_library(app)
    client: FlaskClient = app.test_client()
    failures: list[tuple[str, str]] = []
    statuses = {200: 0, 400: 0}

    for number, text in enumerate(queries):
        via_http = number < hand_written or number % HTTP_SHARE == 0
        if number < hand_written or not via_http:
            # Straight into the library: any exception here would be a 500 behind the API.
            try:
                results = search(library.engine, library.analyzer, Query(text=text, size=1))
            except Exception as error:  # noqa: BLE001 - every kind of failure is what this test looks for
                failures.append((text[:80], f"library: {type(error).__name__}: {error}"[:200]))
                continue
            failures.extend((text[:80], problem) for hit in results.hits for problem in escaped_problems(hit.snippet))
        if via_http:
            response = client.get("/api/v1/search?" + http_query_string(text, number))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            failures.extend((text[:80], problem) for problem in problems_of(response))

    for raw in RAW_QUERY_STRINGS:
        response = client.get("/api/v1/search?" + raw)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        failures.extend((raw, problem) for problem in problems_of(response))

    assert failures == [], f"{len(failures)} failures, first: {failures[:5]}"
    assert set(statuses) == {200, 400}, statuses
    # Both answers really happened: long texts and bad parameters are refused, the rest searched.
    assert statuses[200] > 1000 and statuses[400] > 100, statuses
