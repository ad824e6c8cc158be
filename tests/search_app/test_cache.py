"""The search result cache: identical searches share a result until the index changes (or, for an engine that
cannot tell, for a lifetime), a change indexed by this process is seen at once, and the search log still counts
every request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from indexer.library import Library
from indexer.search import Query
from indexer.store import SearchLogRow
from search_app import get_library
from search_app.cache import VERSIONED_MAX_AGE, ResultCache
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


def test_identical_searches_share_one_result_until_another_process_changes_the_index(app: Flask) -> None:
    library = get_library(app)
    calls = counting(library)
    now = [1000.0]
    cache = ResultCache(2.0, clock=lambda: now[0])
    first = cache.search(library, Query(text="図書館"))
    assert cache.search(library, Query(text="図書館")) is first
    cache.search(library, Query(text="公民館"))
    assert len(calls) == 2
    now[0] += 60  # the embedded engine says when its index changed: time alone does not expire a result
    assert cache.search(library, Query(text="図書館")) is first
    other = Library.open(library.settings)  # another process's write: this library's change counter stays
    try:
        other.ingest({"id": "faq-tosho", "kind": "faq", "title": "図書館の休館日", "body": "月曜日です。",
                      "provenance": "npo"}, author="tests", summary="cache test")
    finally:
        other.close()
    fresh = cache.search(library, Query(text="図書館"))
    assert fresh is not first and fresh.total == first.total + 1
    assert len(calls) == 3
    now[0] += VERSIONED_MAX_AGE
    assert cache.search(library, Query(text="図書館")) is not fresh  # the bound, should a change go unseen
    assert (cache.hits, cache.misses) == (2, 4)  # the workers log these as they stop


def test_an_engine_that_cannot_tell_its_version_gets_the_lifetime(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = get_library(app)
    monkeypatch.setattr(library.engine, "version", lambda: None)  # as Elasticsearch answers
    calls = counting(library)
    now = [1000.0]
    cache = ResultCache(2.0, clock=lambda: now[0])
    first = cache.search(library, Query(text="図書館"))
    now[0] += 1.5
    assert cache.search(library, Query(text="図書館")) is first
    now[0] += 1.0
    assert cache.search(library, Query(text="図書館")) is not first
    assert len(calls) == 2


def test_results_of_an_older_index_leave_the_cache_once_a_newer_one_is_seen(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = get_library(app)
    version = ["v1"]
    monkeypatch.setattr(library.engine, "version", lambda: version[0])
    cache = ResultCache(2.0)
    for text in ("図書館", "公民館", "リコール"):
        cache.search(library, Query(text=text))
    assert len(cache) == 3
    version[0] = "v2"  # each pushed notice is a new index version: the old results can never be served again
    first = cache.search(library, Query(text="図書館"))
    assert len(cache) == 1
    assert cache.search(library, Query(text="図書館")) is first


def test_results_past_their_lifetime_leave_the_cache_as_new_ones_come_in(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = get_library(app)
    monkeypatch.setattr(library.engine, "version", lambda: None)
    now = [1000.0]
    cache = ResultCache(2.0, clock=lambda: now[0])
    cache.search(library, Query(text="図書館"))
    cache.search(library, Query(text="公民館"))
    now[0] += 1.0
    cache.search(library, Query(text="リコール"))
    assert len(cache) == 3
    now[0] += 1.5  # the first two are past 2 s, the third is not
    cache.search(library, Query(text="回収"))
    assert len(cache) == 2


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


def test_the_number_of_results_kept_is_a_setting(make_app: Callable[..., Flask]) -> None:
    app = make_app(SEARCH_CACHE_ENTRIES=2, SEARCH_CACHE_SHARED=False)  # the workers' shared file would answer
    library = get_library(app)
    calls = counting(library)
    client = app.test_client()
    for text in ("図書館", "防災", "ごみ", "図書館"):  # the first has been pushed out by the third
        client.get(f"/api/v1/search?q={text}")
    assert len(calls) == 4
    assert len(app.extensions["result_cache"]) == 2
