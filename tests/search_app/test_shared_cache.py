"""Results shared by the server's worker processes: one worker's search answers another's, only for the index
version it was made on, only if the app's key signed it, and any trouble with the file is a plain search."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from indexer.library import Library
from indexer.search import Query
from search_app import get_library, shared_cache
from search_app.shared_cache import TRIM_EVERY, SharedResults
from tests.search_app.test_cache import counting

REPO = Path(__file__).resolve().parents[2]


def shared_of(app: Flask) -> SharedResults:
    shared = app.extensions["result_cache"].shared
    assert shared is not None
    return shared


def test_a_search_another_worker_process_made_is_answered_without_searching(app: Flask) -> None:
    library = get_library(app)
    worker = textwrap.dedent(f"""
        from search_app import create_app
        from tests.search_app.conftest import settings_for
        from pathlib import Path
        app = create_app({{"LIBRARY_SETTINGS": settings_for(Path({str(library.settings.data_dir)!r})),
                           "TESTING": True}})
        assert app.test_client().get("/api/v1/search?q=図書館").status_code == 200
        assert app.extensions["result_cache"].misses == 1
    """)
    subprocess.run([sys.executable, "-c", worker], cwd=REPO, check=True, timeout=120)
    calls = counting(library)
    client = app.test_client()
    answer = client.get("/api/v1/search?q=図書館").get_json()
    assert calls == []  # the other process's tantivy version is this one's: its result is served
    cache = app.extensions["result_cache"]
    assert (cache.shared_hits, cache.misses) == (1, 0)
    assert answer["total"] > 0 and all("図書館" in hit["title"] + hit["snippet"] for hit in answer["hits"])
    client.get("/api/v1/search?q=図書館")
    assert (cache.hits, cache.shared_hits) == (1, 1)  # and kept in this process's own cache from then on


def test_a_result_of_an_older_index_is_never_served_and_its_rows_go(app: Flask) -> None:
    library = get_library(app)
    client = app.test_client()
    before = client.get("/api/v1/search?q=図書館").get_json()["total"]
    client.get("/api/v1/search?q=防災")
    assert len(shared_of(app)) == 2
    other = Library.open(library.settings)  # another worker indexes a change
    try:
        other.ingest({"id": "faq-tosho-shared", "kind": "faq", "title": "図書館の返却ポスト", "body": "駅前にあります。",
                      "provenance": "npo"}, author="tests", summary="shared cache test")
    finally:
        other.close()
    calls = counting(library)
    assert client.get("/api/v1/search?q=図書館").get_json()["total"] == before + 1
    assert len(calls) == 1
    assert len(shared_of(app)) == 1  # only the new version's row is left


def test_a_row_not_signed_with_this_apps_key_is_not_read(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    library = get_library(app)
    version = library.engine.version()
    results = library.search(Query(text="図書館"))
    forger = SharedResults(shared_of(app).path, "another key")
    forger.put(version, Query(text="図書館"), results)
    stored = forger.get(version, Query(text="図書館"), 60)
    assert stored == results  # the row itself is sound, down to what comparisons leave out:
    assert stored is not None and stored.terms == results.terms  # pinned notices match against these
    assert [hit.title_html for hit in stored.hits] == [hit.title_html for hit in results.hits]
    calls = counting(library)
    with caplog.at_level(logging.WARNING, logger="search_app.shared_cache"):
        app.test_client().get("/api/v1/search?q=図書館")
    assert len(calls) == 1
    assert "wrong signature" in caplog.text


def test_a_damaged_file_is_made_anew(make_app: Callable[..., Flask], data_dir: Path) -> None:
    (data_dir / "search-cache.sqlite3").write_bytes(b"not a database, but forty bytes of junk!" * 200)
    first = make_app()
    first.test_client().get("/api/v1/search?q=図書館")
    second = make_app()
    calls = counting(get_library(second))
    assert second.test_client().get("/api/v1/search?q=図書館").status_code == 200
    assert calls == []


def test_a_file_that_cannot_be_made_only_turns_sharing_off(
    make_app: Callable[..., Flask], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    shared_of(app).path = data_dir / "library.db" / "search-cache.sqlite3"  # under a file: no directory there
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="search_app.shared_cache"):
        for text in ("図書館", "防災", "図書館"):
            assert client.get(f"/api/v1/search?q={text}").status_code == 200
    assert caplog.text.count("is off in this process") == 1
    cache = app.extensions["result_cache"]
    assert (cache.hits, cache.shared_hits, cache.misses) == (1, 0, 2)


def test_rows_are_bounded_oldest_out_and_expire(app: Flask) -> None:
    library = get_library(app)
    version = library.engine.version()
    results = library.search(Query(text="図書館"))
    now = [1000.0]
    shared = SharedResults(shared_of(app).path, app.config["SECRET_KEY"], max_rows=5, clock=lambda: now[0])
    for page in range(1, TRIM_EVERY + 1):
        shared.put(version, Query(text="図書館", page=page), results)
    assert len(shared) == 5
    assert shared.get(version, Query(text="図書館", page=TRIM_EVERY), 60) == results
    assert shared.get(version, Query(text="図書館", page=1), 60) is None
    now[0] += 60
    assert shared.get(version, Query(text="図書館", page=TRIM_EVERY), 60) is None


def test_sharing_is_a_setting(make_app: Callable[..., Flask]) -> None:
    assert make_app(SEARCH_CACHE_SHARED=False).extensions["result_cache"].shared is None
    assert make_app(SEARCH_CACHE_SECONDS=0).extensions["result_cache"].shared is None


def test_a_row_another_build_wrote_is_another_key(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row pickled by a build whose classes had other fields would unpickle into objects missing some."""
    library = get_library(app)
    version = library.engine.version()
    shared = shared_of(app)
    monkeypatch.setattr(shared_cache, "FORMAT", b"an older build")
    shared.put(version, Query(text="図書館"), library.search(Query(text="図書館")))
    monkeypatch.undo()
    assert shared.get(version, Query(text="図書館"), 60) is None
    assert len(shared) == 1
