"""The short-lived search result cache: identical searches share a result, a change indexed by this process is
seen at once, entries expire, and the search log still counts every request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from indexer.search import Query
from indexer.store import SearchLogRow
from search_app import get_library
from search_app.cache import ResultCache
from search_app.searchlog import flush_search_log


def counting(library: Any) -> list[Query]:
    calls: list[Query] = []
    search = library.search

    def wrapped(query: Query) -> Any:
        calls.append(query)
        return search(query)

    library.search = wrapped
    return calls


def logged(library: Any) -> int:
    with library.store.session(readonly=True) as session:
        return session.scalar(select(func.count()).select_from(SearchLogRow)) or 0


def test_identical_searches_share_one_result_until_it_expires(app: Flask) -> None:
    library = get_library(app)
    calls = counting(library)
    now = [1000.0]
    cache = ResultCache(2.0, clock=lambda: now[0])
    first = cache.search(library, Query(text="図書館"))
    assert cache.search(library, Query(text="図書館")) is first
    cache.search(library, Query(text="公民館"))
    assert len(calls) == 2
    now[0] += 2.5
    assert cache.search(library, Query(text="図書館")) is not first
    assert len(calls) == 3
    assert (cache.hits, cache.misses) == (1, 3)  # the workers log these as they stop


def test_a_change_indexed_here_is_never_hidden(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/api/v1/search?q=カモメ饅頭").get_json()["total"] == 0
    get_library(app).ingest({"id": "faq-kamome", "kind": "faq", "title": "カモメ饅頭の販売日",
                             "body": "毎週土曜日に販売します。", "provenance": "npo"},
                            author="tests", summary="cache test")
    assert client.get("/api/v1/search?q=カモメ饅頭").get_json()["total"] == 1


def test_zero_turns_it_off_and_the_log_counts_every_request(make_app: Callable[..., Flask]) -> None:
    app = make_app(SEARCH_CACHE_SECONDS=0, SEARCH_LOG_BATCH=1)
    library = get_library(app)
    calls = counting(library)
    client = app.test_client()
    for _ in range(3):
        client.get("/api/v1/search?q=図書館")
    assert len(calls) == 3
    flush_search_log(library)
    before = logged(library)
    cached = make_app(SEARCH_LOG_BATCH=1)
    library = get_library(cached)
    calls = counting(library)
    client = cached.test_client()
    for _ in range(3):
        client.get("/api/v1/search?q=図書館")
    assert len(calls) == 1
    flush_search_log(library)
    assert logged(library) == before + 3  # every request is logged, cached or not
