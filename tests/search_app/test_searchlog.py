"""The search log: what was asked and how it went, never who asked (T08); best-effort, never failing a search."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, select, text

from indexer.library import Library
from indexer.search import Query, Results
from indexer.store import SearchLogRow
from indexer.store.searchlog import DEFAULT_RETENTION_DAYS, write_search_log
from search_app import get_library
from search_app.searchlog import flush_search_log, log_search, mask_personal_data, zero_result_queries

COLUMNS = {"id", "at", "query", "filters", "total", "took_ms", "relaxed"}


def logged(app: Flask) -> list[SearchLogRow]:
    library = get_library(app)
    with app.app_context():
        flush_search_log(library)
    with library.store.session(readonly=True) as session:
        return list(session.scalars(select(SearchLogRow).order_by(SearchLogRow.id)))


def test_an_api_search_is_logged_with_its_filters_count_and_latency(app: Flask, client: FlaskClient) -> None:
    client.get("/api/v1/search?q=図書館&kind=facility,program&from=2026-01-01&sort=newest&page=1")
    (row,) = logged(app)
    assert row.query == "図書館"
    assert row.filters == {"kind": ["facility", "program"], "from": "2026-01-01T00:00:00+09:00"}
    assert row.total == 3 and row.relaxed is False
    assert row.took_ms > 0
    assert row.at.tzinfo is not None and abs(datetime.now(UTC) - row.at) < timedelta(minutes=1)


def test_the_table_has_no_column_for_who_asked(library: Library) -> None:
    columns = {column["name"] for column in inspect(library.store.engine).get_columns("search_log")}
    assert columns == COLUMNS
    assert {column.name for column in SearchLogRow.__table__.columns} == COLUMNS


def test_client_addresses_and_agents_are_never_stored(app: Flask, client: FlaskClient) -> None:
    client.get(
        "/api/v1/search?q=ごみ",
        headers={
            "X-Forwarded-For": "203.0.113.77, 198.51.100.23",
            "X-Real-IP": "203.0.113.78",
            "User-Agent": "canary-agent/9.9",
            "Cookie": "session=canary-cookie",
        },
        environ_base={"REMOTE_ADDR": "192.0.2.99"},
    )
    assert len(logged(app)) == 1
    with get_library(app).store.session(readonly=True) as session:
        dump = " ".join(
            str(value) for row in session.execute(text("SELECT * FROM search_log")) for value in row
        )
    for canary in ("203.0.113", "198.51.100", "192.0.2.99", "canary"):
        assert canary not in dump


def test_phone_numbers_and_email_addresses_are_masked(app: Flask, client: FlaskClient) -> None:
    client.get("/api/v1/search", query_string={"q": "山田 ０９０－１２３４－５６７８ taro@example.jp"})
    client.get("/api/v1/search", query_string={"q": "4501234001017"})  # a JAN code is what a curator needs
    assert [row.query for row in logged(app)] == ["山田 〔電話番号〕 〔メールアドレス〕", "4501234001017"]


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("03-1234-5678", "〔電話番号〕"),
        ("(03)1234-5678", "〔電話番号〕"),
        ("0120-000-101 窓口", "〔電話番号〕 窓口"),
        ("09012345678", "〔電話番号〕"),
        ("SB-PB10K-W", "SB-PB10K-W"),
        ("2026-04-01", "2026-04-01"),
        ("ＡＥＤ", "AED"),
    ],
)
def test_masking(typed: str, stored: str) -> None:
    assert mask_personal_data(typed) == stored


def test_logging_can_be_switched_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(SEARCH_LOG=False)
    app.test_client().get("/api/v1/search?q=図書館")
    assert logged(app) == []


def test_rows_are_written_in_batches(make_app: Callable[..., Flask]) -> None:
    app = make_app(SEARCH_LOG_BATCH=3)
    client = app.test_client()
    library = get_library(app)

    def stored() -> int:
        with library.store.session(readonly=True) as session:
            return len(session.scalars(select(SearchLogRow.id)).all())

    client.get("/api/v1/search?q=一")
    client.get("/api/v1/search?q=二")
    assert stored() == 0
    client.get("/api/v1/search?q=三")
    assert stored() == 3


def test_old_rows_are_written_with_the_next_search(make_app: Callable[..., Flask]) -> None:
    app = make_app(SEARCH_LOG_MAX_AGE=0)
    app.test_client().get("/api/v1/search?q=一")
    with get_library(app).store.session(readonly=True) as session:
        assert session.scalars(select(SearchLogRow.query)).all() == ["一"]


def test_a_failing_log_never_fails_the_search(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(SEARCH_LOG_BATCH=1)
    library = get_library(app)
    with library.store.session() as session:
        session.execute(text("DROP TABLE search_log"))
    with caplog.at_level(logging.WARNING):
        response = app.test_client().get("/api/v1/search?q=図書館")
    assert response.status_code == 200 and response.get_json()["total"] == 3
    assert "search log" in caplog.text


def record_searches(app: Flask, searches: list[tuple[str, int]]) -> None:
    """Logged searches with chosen outcomes, without going through the engine."""
    library = get_library(app)
    with app.test_request_context():
        for query_text, total in searches:
            query = Query(text=query_text)
            log_search(library, query, Results(query, total, 1.0, []))
        flush_search_log(library)


def test_zero_result_queries_are_counted_most_frequent_first(app: Flask) -> None:
    record_searches(
        app,
        [("ぬいぐるみ回収", 0), ("図書館", 3), ("ぬいぐるみ回収", 0), ("がらがら", 0), ("", 0), ("ぬいぐるみ回収", 0),
         ("がらがら", 0), ("あいうえお", 0)],
    )  # fmt: skip
    with app.app_context():
        library = get_library(app)
        assert zero_result_queries(library) == [("ぬいぐるみ回収", 3), ("がらがら", 2), ("あいうえお", 1)]
        assert zero_result_queries(library, limit=1) == [("ぬいぐるみ回収", 3)]


def test_zero_result_queries_since_a_time(app: Flask) -> None:
    record_searches(app, [("古い検索", 0)])
    library = get_library(app)
    with library.store.session() as session:
        for row in session.scalars(select(SearchLogRow)):
            row.at = datetime.now(UTC) - timedelta(days=40)
    record_searches(app, [("新しい検索", 0)])
    with app.app_context():
        since = datetime.now(UTC) - timedelta(days=30)
        assert zero_result_queries(library, since=since) == [("新しい検索", 1)]
        assert len(zero_result_queries(library)) == 2


def test_api_zero_hit_searches_reach_the_report_before_their_batch_is_written(
    app: Flask, client: FlaskClient
) -> None:
    for q in ("ぬぬぬぬ", "ぬぬぬぬ", "図書館"):
        client.get("/api/v1/search", query_string={"q": q})
    with app.app_context():
        assert zero_result_queries(get_library(app)) == [("ぬぬぬぬ", 2)]


def test_each_process_purges_expired_rows_after_its_first_write(make_app: Callable[..., Flask]) -> None:
    # A safety net for installations that run no beat: rows past the retention period go with the first batch.
    app = make_app(SEARCH_LOG_BATCH=1)
    library = get_library(app)
    old = {"query": "山田太郎", "filters": {}, "total": 0, "took_ms": 1.0, "relaxed": False}
    write_search_log(library.store, [{**old, "at": datetime.now(UTC) - timedelta(days=DEFAULT_RETENTION_DAYS + 1)}])
    recent = {**old, "query": "最近", "at": datetime.now(UTC) - timedelta(days=DEFAULT_RETENTION_DAYS - 1)}
    write_search_log(library.store, [recent])
    app.test_client().get("/api/v1/search?q=図書館")
    assert [row.query for row in logged(app)] == ["最近", "図書館"]
