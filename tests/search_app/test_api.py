"""The JSON API through Flask's test client: every route, parameter and error (issue 3, T24)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, abort, request
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import TooManyRequests

from indexer.engines.base import EngineError
from indexer.engines.breaker import CircuitOpenError
from indexer.library import Library
from indexer.query import MAX_TERMS, parse_query
from indexer.search import compile_query
from indexer.store.models import utcnow
from indexer.store.searchlog import write_search_log
from search_app import get_library, searchlog
from search_app.auth.policy import PUBLIC, access
from search_app.errors import RETRY_AFTER_SECONDS
from search_app.searchlog import (
    FREQUENT_DAYS,
    FREQUENT_MIN_TIMES,
    FrequentQueries,
    flush_search_log,
    frequent_queries,
)

SEARCH_KEYS = {"total", "took_ms", "page", "size", "relaxed", "hits", "facets", "pinned"}
HIT_KEYS = {
    "id", "kind", "title", "url", "snippet", "score", "provenance", "organization", "region", "categories",
    "published_at", "event_at", "verified_at", "details",
}  # fmt: skip


def search(client: FlaskClient, **params: Any) -> dict[str, Any]:
    response = client.get("/api/v1/search", query_string=params)
    assert response.status_code == 200, response.get_json()
    assert response.content_type == "application/json; charset=utf-8"
    return response.get_json()


def assert_problem(response: Any, status: int, *, detail_has: str = "") -> dict[str, Any]:
    assert response.status_code == status
    assert response.content_type == "application/problem+json; charset=utf-8"
    body = response.get_json(force=True)
    assert set(body) == {"type", "title", "status", "detail", "instance"}
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["instance"] == response.request.path
    # Japanese for the people who read it: at least one kana or kanji in title and detail.
    assert any("\u3040" <= ch <= "\u9fff" for ch in body["title"] + body["detail"]), body
    assert detail_has in body["detail"]
    assert "Traceback" not in body["detail"]
    return body


# --- /api/v1/search ---------------------------------------------------------------------------------------


def test_search_returns_the_hit_shape_with_facets(client: FlaskClient) -> None:
    body = search(client, q="図書館")
    assert set(body) == SEARCH_KEYS
    assert body["total"] == len(body["hits"]) > 0
    assert (body["page"], body["size"], body["relaxed"]) == (1, 10, False)
    for hit in body["hits"]:
        assert set(hit) == HIT_KEYS
    assert "<mark>図書館</mark>" in "".join(hit["snippet"] for hit in body["hits"])
    assert {"kind", "categories", "organization", "region", "provenance", "year"} <= set(body["facets"])
    facet = body["facets"]["kind"][0]
    assert set(facet) == {"value", "label", "count"}


def test_empty_query_lists_everything_newest_first(client: FlaskClient) -> None:
    body = search(client, size=100)
    assert body["total"] == 47
    dates = [hit["published_at"] for hit in body["hits"] if hit["published_at"]]
    assert dates == sorted(dates, reverse=True)


@pytest.mark.parametrize(
    ("param", "value", "facet"),
    [
        ("kind", "notice", "kind"),
        ("category", "safety.recall", "categories"),
        ("organization", "みなと市立図書館", "organization"),
        ("region", "みなと市", "region"),
        ("provenance", "government", "provenance"),
        ("year", "2026", "year"),
    ],
)
def test_each_filter_narrows_to_its_value(client: FlaskClient, param: str, value: str, facet: str) -> None:
    everything = search(client)["total"]
    body = search(client, **{param: value})
    assert 0 < body["total"] < everything or param == "year"
    assert [bucket["value"] for bucket in body["facets"][facet]][:1] == [value]
    counts = {bucket["value"]: bucket["count"] for bucket in body["facets"][facet]}
    assert counts[value] == body["total"]


def test_filters_take_repeated_and_comma_separated_values(client: FlaskClient) -> None:
    notices = search(client, kind="notice")["total"]
    products = search(client, kind="product")["total"]
    repeated = client.get("/api/v1/search?kind=notice&kind=product").get_json()
    assert repeated["total"] == notices + products
    assert search(client, kind="notice,product")["total"] == notices + products
    assert search(client, kind="notice, ,notice")["total"] == notices


def test_unknown_filter_values_match_nothing(client: FlaskClient) -> None:
    assert search(client, kind="spaceship")["total"] == 0
    assert search(client, provenance="rumour", q="図書館")["total"] == 0


def test_date_range_keeps_records_inside_it(client: FlaskClient) -> None:
    body = search(client, **{"from": "2026-03-01", "to": "2026-03-31", "size": 100})
    assert body["total"] > 0
    for hit in body["hits"]:
        stamps = [hit["published_at"], hit["event_at"]]
        assert any(s and "2026-03-01" <= s[:10] <= "2026-03-31" for s in stamps), hit
    assert search(client, **{"from": "2026-03-01T00:00:00+09:00"})["total"] > 0


@pytest.mark.parametrize("sort", ["relevance", "newest", "event"])
def test_every_sort_order_is_accepted(client: FlaskClient, sort: str) -> None:
    assert search(client, q="子育て", sort=sort)["total"] > 0


def test_newest_sort_orders_by_publication(client: FlaskClient) -> None:
    dates = [hit["published_at"] for hit in search(client, q="市", sort="newest", size=50)["hits"]]
    present = [d for d in dates if d]
    assert present == sorted(present, reverse=True)


def test_pages_split_the_results(client: FlaskClient) -> None:
    first = search(client, size=5, page=1)
    second = search(client, size=5, page=2)
    assert (second["page"], second["size"]) == (2, 5)
    assert not {h["id"] for h in first["hits"]} & {h["id"] for h in second["hits"]}
    assert search(client, size=5, page=1000)["hits"] == []


def test_a_query_missing_one_word_is_relaxed(client: FlaskClient) -> None:
    body = search(client, q="図書館 ペンギン")
    assert body["relaxed"] is True and body["total"] > 0


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"page": "x"}, "page"),
        ({"page": "0"}, "ページ"),
        ({"page": "1001"}, "ページ"),
        ({"size": "0"}, "件数"),
        ({"size": "101"}, "件数"),
        ({"size": "ten"}, "size"),
        ({"sort": "random"}, "sort"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-04-02", "to": "2026-04-01"}, "開始"),
        ({"kind": ",".join(f"k{i}" for i in range(21))}, "絞り込み"),
        ({"q": "あ" * 10 * 1024}, "長すぎ"),
    ],
)
def test_bad_parameters_are_400_problems_naming_them(
    client: FlaskClient, params: dict[str, str], names: str
) -> None:
    assert_problem(client.get("/api/v1/search", query_string=params), 400, detail_has=names)


HOSTILE_QUERIES = [
    '"',
    '"図書館',
    "「図書館",
    "AND OR NOT",
    "図書館 OR",
    "OR",
    "NEAR(図書館 公民館)",
    "(((図書館",
    "*",
    "図書*",
    "-",
    "--図書館",
    "-図書館",
    "\x00",
    "図書\x00館",
    "＂回収＂",
    "図書館 ＯＲ 公民館",
    "－回収",
    "（図書館）",
    "\u202e図書館",
    "\ufeff",
    "\U0010ffff",
    "' OR 1=1 --",
    "title_c:図書館",
    "<script>alert(1)</script>",
    "a" * 1000,
    "あ" * 1000,
    "図書館の" * 250,
    "図書館 " * 150,
]


def test_hostile_queries_are_answered_quickly(client: FlaskClient) -> None:
    search(client, q="図書館")  # the analyzer loads on the first query
    for text in HOSTILE_QUERIES:
        started = time.perf_counter()
        body = search(client, q=text)
        elapsed = time.perf_counter() - started
        # T24's 500 ms is measured by benchmarks/core.py; here only a pathological blow-up fails, on any CI load.
        assert elapsed <= 5, (text[:20], elapsed)
        assert isinstance(body["total"], int)
        for hit in body["hits"]:
            assert "<script>" not in hit["snippet"]


def test_one_long_word_analyses_into_a_bounded_deduplicated_query(library: Library) -> None:
    """図×1000 is one whitespace word but hundreds of one-kanji terms: they are deduped and capped (T24)."""
    groups, _, terms = compile_query(parse_query("図" * 1000), library.analyzer)
    assert 1 <= len(groups) <= MAX_TERMS and len(terms) == len(set(terms))
    groups, _, _ = compile_query(parse_query("".join(chr(0x4E00 + i * 7) for i in range(300))), library.analyzer)
    assert len(groups) <= MAX_TERMS


def test_pinned_lists_urgent_notices_the_query_names(client: FlaskClient) -> None:
    assert search(client, q="図書館")["pinned"] == []
    pinned = search(client, q="モバイルバッテリー")["pinned"]
    assert "demo-notice-001" in [notice["id"] for notice in pinned]
    assert {notice["kind"] for notice in search(client, kind="notice")["pinned"]} == {"notice"}
    by_maker = search(client, organization="株式会社サンプル電機")["pinned"]
    assert [notice["id"] for notice in by_maker] == ["demo-notice-001"]  # -007 of the same maker is not urgent


def test_engine_failure_is_a_503_problem_with_retry_after(
    client: FlaskClient, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: object) -> None:
        raise EngineError("connection refused to 10.0.0.5:9200")

    monkeypatch.setattr(library, "search", down)
    response = client.get("/api/v1/search?q=図書館")
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert "10.0.0.5" not in body["detail"]


def test_an_open_circuit_tells_when_to_retry(
    client: FlaskClient, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    def open_circuit(*args: object) -> None:
        raise CircuitOpenError("elasticsearch", retry_after=17)

    monkeypatch.setattr(library.engine, "suggest", open_circuit)
    response = client.get("/api/v1/suggest?q=図")
    assert_problem(response, 503)
    assert response.headers["Retry-After"] == "17"


# --- /api/v1/records/<id> ---------------------------------------------------------------------------------


def test_a_published_record_has_all_fields_revision_and_labels(client: FlaskClient) -> None:
    response = client.get("/api/v1/records/demo-notice-001")
    assert response.status_code == 200
    assert response.content_type == "application/json; charset=utf-8"
    record = response.get_json()
    assert record["id"] == "demo-notice-001"
    assert record["revision"] == 1
    assert (record["kind_label"], record["provenance_label"]) == ("お知らせ・リコール", "メーカー公式")
    assert record["maker"] == "株式会社サンプル電機"
    assert record["jan_codes"] == ["4501234001017", "4501234001024"]
    assert "updated_at" in record  # every field, None included, as record_to_dict writes it


def test_revision_counts_edits(client: FlaskClient, library: Library) -> None:
    data = client.get("/api/v1/records/demo-faq-001").get_json()
    edited = {k: v for k, v in data.items() if k not in ("revision", "kind_label", "provenance_label")}
    library.ingest({**edited, "body": edited["body"] + "（追記）"}, author="tests", summary="edit")
    assert client.get("/api/v1/records/demo-faq-001").get_json()["revision"] == 2


@pytest.mark.parametrize("status", ["pending", "retracted", "expired"])
def test_unpublished_records_are_404_like_missing_ones(
    client: FlaskClient, library: Library, status: str
) -> None:
    data = client.get("/api/v1/records/demo-faq-002").get_json()
    record = {k: v for k, v in data.items() if k not in ("revision", "kind_label", "provenance_label")}
    library.ingest({**record, "status": status}, author="tests", summary=status)
    hidden = assert_problem(client.get("/api/v1/records/demo-faq-002"), 404)
    missing = assert_problem(client.get("/api/v1/records/demo-faq-999"), 404)
    assert hidden["detail"].replace("demo-faq-002", "") == missing["detail"].replace("demo-faq-999", "")


@pytest.mark.parametrize(
    "record_id", ["nothing-here", "x" * 500, "<script>", "..", "%00", "'; DROP TABLE records"]
)
def test_unknown_ids_are_404_problems(client: FlaskClient, record_id: str) -> None:
    response = client.get(f"/api/v1/records/{record_id}")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json; charset=utf-8"


# --- /api/v1/suggest --------------------------------------------------------------------------------------


def suggest(client: FlaskClient, q: str, **params: str) -> list[str]:
    response = client.get("/api/v1/suggest", query_string={"q": q, **params})
    assert response.status_code == 200
    assert response.content_type == "application/json; charset=utf-8"
    body = response.get_json()
    assert body["q"] == q
    assert len(body["suggestions"]) == len(set(body["suggestions"])) <= 10
    return body["suggestions"]


def test_suggest_completes_title_words_then_titles(client: FlaskClient) -> None:
    found = suggest(client, "モバイル")
    assert found[0] == "モバイルバッテリー"
    assert "モバイルバッテリー「ポケットチャージ10000」回収・無償交換のお知らせ" in found


def test_suggest_completes_the_last_word_of_several(client: FlaskClient) -> None:
    found = suggest(client, "回収 モバイ")
    assert "回収 モバイルバッテリー" in found


def test_suggest_reads_hiragana_as_katakana_readings(client: FlaskClient) -> None:
    assert "トショ" in suggest(client, "としょ")


def test_suggest_offers_whole_titles_containing_the_input(client: FlaskClient) -> None:
    found = suggest(client, "図書館")
    assert "みなと市立図書館（中央館）" in found


def log_rows(library: Library, query: str, times: int, total: int = 3, **columns: Any) -> None:
    row = {"at": utcnow(), "query": query, "filters": {}, "total": total, "took_ms": 1.0, "relaxed": False}
    write_search_log(library.store, [{**row, **columns} for _ in range(times)])


def test_suggest_offers_what_others_searched_and_found(client: FlaskClient, library: Library) -> None:
    log_rows(library, "防災訓練 申し込み", 3)
    log_rows(library, "防災 訓練", 4)
    log_rows(library, "AED 設置場所", 5)
    found = suggest(client, "防災")
    assert found[:2] == ["防災 訓練", "防災訓練 申し込み"]  # the most frequent first, before title words
    assert "防災訓練 申し込み" in suggest(client, "ぼうさいくん")  # kana input, by reading
    assert suggest(client, "ａｅｄ")[0] == "AED 設置場所"  # full-width and lower case fold
    assert suggest(client, "防災 ") == ["防災 訓練"]  # after a space: a whole next word


def test_suggest_never_reveals_a_rare_failed_or_masked_query(client: FlaskClient, library: Library) -> None:
    log_rows(library, "防災 山田花子さん宅", 2)  # seen twice: could be one person's
    log_rows(library, "防災ヘルメット 在庫", 9, total=0)  # found nothing
    log_rows(library, "防災頭巾 作り方", 9, relaxed=True)  # found only records with some of the words
    log_rows(library, "防災 〔電話番号〕", 9)  # someone's number, masked by the log
    log_rows(library, "防災" + "の" * 80, 9)  # a sentence, not a search
    log_rows(library, "防災 古い", 9, at=utcnow() - timedelta(days=FREQUENT_DAYS + 1))
    for typed in ("防災", "ぼうさい", "防災 "):
        for shown in suggest(client, typed):
            assert not shown.startswith(("防災 山田", "防災ヘルメット", "防災頭巾", "防災 〔", "防災のの", "防災 古い"))
    log_rows(library, "防災 山田花子さん宅", 1)  # a third time: now many people asked it
    with client.application.app_context():
        assert ("防災 山田花子さん宅", 3) in frequent_queries(library, min_times=1)  # never fewer than 3
        assert all(times >= FREQUENT_MIN_TIMES for _, times in frequent_queries(library, min_times=1))


def test_frequent_searches_are_read_once_per_refresh_not_per_keystroke(
    app: Flask, client: FlaskClient, library: Library
) -> None:
    clock = [1000.0]
    app.extensions["frequent_queries"] = cache = FrequentQueries(seconds=60, clock=lambda: clock[0])
    log_rows(library, "防災マップ 配布", 3)
    for typed in ("ぼ", "ぼう", "ぼうさ", "ぼうさい", "防災", "防災ま"):
        suggest(client, typed)
    assert cache.loads == 1
    assert "防災マップ 配布" in suggest(client, "防災")
    log_rows(library, "防災無線 聞こえない", 3)
    assert "防災無線 聞こえない" not in suggest(client, "防災")  # within the refresh interval
    clock[0] += 60
    assert "防災無線 聞こえない" in suggest(client, "防災")
    assert cache.loads == 2


def test_suggest_still_completes_titles_when_the_log_cannot_be_read(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(searchlog, "frequent_queries", broken)
    assert suggest(client, "モバイル")[0] == "モバイルバッテリー"


def test_searches_logged_through_the_api_become_suggestions(app: Flask, client: FlaskClient) -> None:
    for _ in range(3):
        found = search(client, q="図書館 おはなし会")
        assert found["total"] > 0 and not found["relaxed"]
    for _ in range(3):
        unfound = search(client, q="図書館 ふしぎな語")
        assert unfound["total"] == 0 or unfound["relaxed"]  # no record has both words
    with app.app_context():
        flush_search_log(get_library(app))
    found = suggest(client, "図書館 ")
    assert "図書館 おはなし会" in found and "図書館 ふしぎな語" not in found


def test_suggest_never_gives_more_than_ten(client: FlaskClient) -> None:
    assert len(suggest(client, "し")) == 10


@pytest.mark.parametrize("q", ["", " ", "図書 ", "\x00", '"', "-", "ＯＲ", "\U0010ffff", "<", "*"])
def test_suggest_handles_blank_and_odd_input(client: FlaskClient, q: str) -> None:
    suggest(client, q)


def test_suggest_refuses_long_input(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/suggest", query_string={"q": "あ" * 101}), 400, detail_has="長すぎ")


def test_suggest_speaks_opensearch_when_asked(client: FlaskClient) -> None:
    for response in (
        client.get("/api/v1/suggest?q=図&fmt=opensearch"),
        client.get("/api/v1/suggest?q=図", headers={"Accept": "application/x-suggestions+json"}),
    ):
        assert response.status_code == 200
        assert response.content_type == "application/x-suggestions+json; charset=utf-8"
        assert "Accept" in response.headers["Vary"]
        text, found = response.get_json(force=True)
        assert text == "図" and "図書館" in found
    json_anyway = client.get(
        "/api/v1/suggest?q=図&fmt=json", headers={"Accept": "application/x-suggestions+json"}
    )
    assert json_anyway.content_type == "application/json; charset=utf-8"
    assert_problem(client.get("/api/v1/suggest?q=図&fmt=xml"), 400, detail_has="fmt")


# --- /api/v1/ping and HTTP errors -------------------------------------------------------------------------


def test_ping(client: FlaskClient) -> None:
    response = client.get("/api/v1/ping")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_api_paths_are_404_problems(client: FlaskClient) -> None:
    assert_problem(client.get("/api/v2/search"), 404)
    assert_problem(client.get("/api"), 404)


def test_wrong_method_is_a_405_problem_with_allow(client: FlaskClient) -> None:
    response = client.post("/api/v1/search", data={"q": "x"})
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]
    assert_problem(client.delete("/api/v1/records/demo-notice-001"), 405)


def add_route(app: Flask, path: str, view: Callable[[], Any], methods: tuple[str, ...] = ("GET",)) -> None:
    app.add_url_rule(path, endpoint=path, view_func=access(PUBLIC)(view), methods=list(methods))


def test_oversized_bodies_are_413_problems(make_app: Callable[..., Flask]) -> None:
    app = make_app(MAX_CONTENT_LENGTH=1024)
    add_route(app, "/api/v1/test-upload", lambda: str(len(request.get_data())), methods=("POST",))
    response = app.test_client().post("/api/v1/test-upload", data=b"x" * 4096)
    assert_problem(response, 413)


def test_rate_limited_requests_are_429_problems_with_retry_after(app: Flask) -> None:
    def limited() -> None:
        raise TooManyRequests(retry_after=60)

    add_route(app, "/api/v1/test-limited", limited)
    response = app.test_client().get("/api/v1/test-limited")
    assert_problem(response, 429)
    assert response.headers["Retry-After"] == "60"


def test_unexpected_errors_are_generic_500_problems(make_app: Callable[..., Flask]) -> None:
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    def broken() -> None:
        raise RuntimeError("SELECT secret FROM members WHERE password = 'hunter2'")

    add_route(app, "/api/v1/test-broken", broken)
    response = app.test_client().get("/api/v1/test-broken")
    body = assert_problem(response, 500)
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "SELECT" not in text and "RuntimeError" not in text
    assert body["title"] == "サーバーでエラーが発生しました"


def test_abort_descriptions_become_the_detail(app: Flask) -> None:
    add_route(app, "/api/v1/test-gone", lambda: abort(404, description="このお知らせは掲載が終わりました。"))
    body = assert_problem(app.test_client().get("/api/v1/test-gone"), 404)
    assert body["detail"] == "このお知らせは掲載が終わりました。"


def test_errors_outside_the_api_are_japanese_html(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.content_type == "text/html; charset=utf-8"
    page = response.get_data(as_text=True)
    assert '<html lang="ja">' in page and "見つかりません" in page


def test_html_errors_fall_back_to_an_inline_page_without_the_template(app: Flask) -> None:
    import jinja2

    app.jinja_env.loader = jinja2.DictLoader({})
    add_route(app, "/test-bad", lambda: abort(400, description='<img src=x onerror="alert(1)">'))
    response = app.test_client().get("/test-bad")
    assert response.status_code == 400
    assert response.content_type == "text/html; charset=utf-8"
    page = response.get_data(as_text=True)
    assert "リクエストが正しくありません" in page
    assert "<img" not in page and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page
