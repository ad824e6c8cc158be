"""Urgent notices: which are active, which a query pins, and that expiry or retraction unpins them.

Reading the active notices runs on both SQL backends (the `urgent` filter is a JSON expression in SQL); the
matching of queries, which is plain Python, runs once, on SQLite, over a library shared by the module.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import search_app.notices as notices_module
from indexer.config import Settings
from indexer.library import Library
from indexer.search import Query
from schemas import JST
from search_app import create_app, get_library
from search_app.notices import FINGERPRINT_INTERVAL, NoticeCache, active_urgent_notices, pinned_notices

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


def notice(record_id: str, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": record_id,
        "kind": "notice",
        "title": "モバイルバッテリー「ポケットチャージ10000」回収・無償交換のお知らせ",
        "body": "充電中に発熱するおそれがあります。",
        "maker": "株式会社サンプル電機",
        "product": "モバイルバッテリー ポケットチャージ10000",
        "model_numbers": ["SB-PB10K-W"],
        "jan_codes": ["4501234001017"],
        "hazard": "発熱・発火のおそれ",
        "action": "使用を中止してください",
        "categories": ["safety.recall", "safety.product"],
        "provenance": "maker",
        "severity": "high",
        "urgent": True,
        "valid_until": "2026-12-31T23:59:59+09:00",
        "published_at": "2026-03-01T10:00:00+09:00",
    }
    record.update(fields)
    return record


HEATER = notice(
    "heater",
    title="カーボンヒーター「ぬくぬくスリム」転倒時に電源が切れない不具合",
    maker="ぬくもり家電株式会社",
    organization="みなと生活協同組合（みなとコープ）",  # the co-op that reported the maker's recall
    product="カーボンヒーター ぬくぬくスリム",
    model_numbers=["NK-CH800"],
    jan_codes=[],
    categories=["safety.product"],
    severity="critical",
    valid_until=None,
    published_at="2026-02-01T10:00:00+09:00",
)


RECORDS = (
    notice("battery"),
    HEATER,
    notice(
        "quiet",
        title="電気ケトルの取扱説明書の記載誤り",
        maker="ケトル工業",
        product="さっとわかすくん",
        model_numbers=[],
        jan_codes=[],
        urgent=False,
    ),
    notice(
        "expired",
        title="昨年の扇風機の回収",
        maker="旧型扇風機製作所",
        product="そよかぜ",
        model_numbers=[],
        jan_codes=[],
        valid_until="2026-01-31T23:59:59+09:00",
    ),
    notice("withdrawn", title="誤って出したお知らせ", status="retracted"),
)


def open_with_notices(settings: Settings) -> Library:
    library = Library.open(settings)
    lines = io.StringIO("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in RECORDS))
    report = library.import_lines(lines, author="test", summary="notice fixture")
    assert not report.errors, report.errors
    return library


@pytest.fixture()
def library(database_url: str, data_dir: Path) -> Iterator[Library]:
    """On each SQL backend, for the tests that read or change the store."""
    lib = open_with_notices(Settings.from_env(data_dir=data_dir, database_url=database_url))
    yield lib
    lib.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    """Read-only, for the many matching cases."""
    directory = tmp_path_factory.mktemp("notices")
    lib = open_with_notices(
        Settings.from_env(data_dir=directory, database_url=f"sqlite:///{directory}/library.db")
    )
    yield lib
    lib.close()


def ids(notices: list[dict[str, Any]]) -> list[str]:
    return [data["id"] for data in notices]


def pinned(library: Library, text: str = "", **filters: Any) -> list[str]:
    return ids(pinned_notices(library, Query(text=text, **filters), now=NOW))


def test_active_notices_are_urgent_published_and_unexpired_most_severe_first(library: Library) -> None:
    assert ids(active_urgent_notices(library, now=NOW)) == ["heater", "battery"]


def test_a_notice_expires_at_its_valid_until(library: Library) -> None:
    just_before = datetime(2026, 12, 31, 23, 59, 58, tzinfo=JST)
    just_after = datetime(2027, 1, 1, 0, 0, tzinfo=JST)
    assert "battery" in ids(active_urgent_notices(library, now=just_before))
    assert "battery" not in ids(active_urgent_notices(library, now=just_after))
    # A notice without valid_until stays until it is retracted or marked not urgent.
    assert ids(active_urgent_notices(library, now=datetime(2099, 1, 1, tzinfo=JST))) == ["heater"]


def test_expiry_unpins(library: Library) -> None:
    assert pinned(library, "モバイルバッテリー") == ["battery"]
    later = datetime(2027, 1, 2, tzinfo=JST)
    assert ids(pinned_notices(library, Query(text="モバイルバッテリー"), now=later)) == []


def test_retraction_and_urgency_changes_unpin(library: Library) -> None:
    library.ingest(notice("battery", status="retracted"), author="test", summary="withdrawn")
    assert pinned(library, "モバイルバッテリー") == []
    library.ingest(notice("battery", urgent=False), author="test", summary="no longer urgent")
    assert pinned(library, "モバイルバッテリー") == []


def test_active_notices_default_to_the_current_time(library: Library) -> None:
    # The fixture's heater notice has no valid_until, so it is active whatever today is.
    assert "heater" in ids(active_urgent_notices(library))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("サンプル電機", ["battery"]),  # a word of the maker
        ("ぬくぬくスリム", ["heater"]),  # the product
        ("ぬくぬく", ["heater"]),  # kana, by reading
        ("ポケットチャージ 充電器", ["battery"]),  # one product word is enough
        ("pb10k", ["battery"]),  # part of a model number, any width or case
        ("ＳＢ－ＰＢ１０Ｋ", ["battery"]),
        ("4501234001017", ["battery"]),  # a JAN code
        ("回収 モバイルバッテリー", ["battery"]),  # every word in the title
        ("リコール", ["battery"]),  # a category label (リコール・回収)
        ("製品事故", ["heater", "battery"]),
        ("ヒーター 転倒", ["heater"]),
    ],
)
def test_query_words_pin_the_notices_they_name(shared: Library, text: str, expected: list[str]) -> None:
    assert pinned(shared, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",  # no words, no filters: the home page lists notices; results need not
        "豆腐",
        "ごみ 回収",  # 回収 is in the title but ごみ is not, and 回収 names no maker or product
        "お知らせ 図書館",
        "10",  # too short to single out a model number
        "-モバイルバッテリー",  # excluded words never pin
        "そよかぜ",  # the expired notice
        "誤って出したお知らせ",  # the retracted one
        "さっとわかすくん",  # not urgent
    ],
)
def test_other_queries_pin_nothing(shared: Library, text: str) -> None:
    assert pinned(shared, text) == []


def test_filters_pin_by_kind_and_category(shared: Library) -> None:
    assert pinned(shared, kind=("notice",)) == ["heater", "battery"]
    assert pinned(shared, kind=("product",)) == []
    assert pinned(shared, category=("safety.recall",)) == ["battery"]
    assert pinned(shared, category=("safety",)) == ["heater", "battery"]  # the parent category
    assert pinned(shared, category=("food.allergy",)) == []
    assert pinned(shared, "豆腐", category=("safety.product",)) == ["heater", "battery"]


def test_the_organization_filter_pins_the_notices_of_that_maker_or_organization(shared: Library) -> None:
    assert pinned(shared, organization=("株式会社サンプル電機",)) == ["battery"]  # the maker
    assert pinned(shared, organization=("みなと生活協同組合（みなとコープ）",)) == ["heater"]  # who reported it
    assert pinned(shared, organization=("ぬくもり家電株式会社",)) == ["heater"]
    # Compared after NFKC folding: half-width katakana, ASCII brackets and full-width letters are the same name.
    assert pinned(shared, organization=("株式会社ｻﾝﾌﾟﾙ電機",)) == ["battery"]
    assert pinned(shared, organization=("みなと生活協同組合(みなとコープ)",)) == ["heater"]
    assert pinned(shared, organization=("ぬくもり家電株式会社", "株式会社サンプル電機")) == ["heater", "battery"]
    assert pinned(shared, "豆腐", organization=("株式会社サンプル電機",)) == ["battery"]


@pytest.mark.parametrize(
    "organization",
    [
        "サンプル電機",  # part of a name: the filter is a facet value, so it names an organization in full
        "株式会社サンプル電機 本社",
        "旧型扇風機製作所",  # the expired notice
        "ケトル工業",  # not urgent
        "みなと市役所",
    ],
)
def test_other_organizations_pin_nothing(shared: Library, organization: str) -> None:
    assert pinned(shared, organization=(organization,)) == []


def test_pinned_notices_are_the_records_data(shared: Library) -> None:
    (battery,) = pinned_notices(shared, Query(text="サンプル電機"), now=NOW)
    assert battery["maker"] == "株式会社サンプル電機"
    assert battery["action"] == "使用を中止してください"
    assert battery["severity"] == "high"


# --- the per-process cache -------------------------------------------------------------------------------------


@pytest.fixture()
def app(library: Library) -> Iterator[Flask]:
    """A web app over the same store as `library`, which stands for another process (worker, CLI, editor)."""
    app = create_app({"LIBRARY_SETTINGS": library.settings, "TESTING": True, "SEARCH_LOG": False})
    yield app
    get_library(app).close()


def cache_of(app: Flask) -> NoticeCache:
    cache = app.extensions["notices"]
    assert isinstance(cache, NoticeCache)
    return cache


def test_searches_read_the_notices_once_until_they_change(app: Flask, library: Library) -> None:
    web = get_library(app)
    clock = [1000.0]
    app.extensions["notices"] = NoticeCache(clock=lambda: clock[0])

    def later() -> None:
        clock[0] += FINGERPRINT_INTERVAL

    with app.app_context():
        assert pinned(web, "モバイルバッテリー") == ["battery"]
        assert pinned(web, "ヒーター 転倒") == ["heater"]
        assert pinned(web, "豆腐") == []
        assert cache_of(app).loads == 1

        # Changes written by another process are seen once FINGERPRINT_INTERVAL has passed, not before.
        library.ingest(notice("battery", status="retracted"), author="test", summary="withdrawn")
        assert pinned(web, "モバイルバッテリー") == ["battery"]
        later()
        assert pinned(web, "モバイルバッテリー") == []
        library.ingest(notice("battery"), author="test", summary="republished")
        later()
        assert pinned(web, "モバイルバッテリー") == ["battery"]
        library.ingest(notice("heater", urgent=False), author="test", summary="no longer urgent")
        later()
        assert pinned(web, "ヒーター 転倒") == []
        fresh = notice("toaster", title="トースターの回収", maker="パンや工房", product="カリッとトースター")
        library.ingest(fresh, author="test", summary="new notice")
        later()
        assert pinned(web, "パンや工房") == ["toaster"]
        assert cache_of(app).loads == 5
        assert pinned(web, "カリッとトースター") == ["toaster"]
        assert cache_of(app).loads == 5


def test_queries_that_cannot_pin_do_not_read_the_notices(app: Flask) -> None:
    web = get_library(app)
    with app.app_context():
        assert (
            pinned(web, "") == pinned(web, "-モバイルバッテリー") == pinned(web, region=("みなと市",)) == []
        )
        assert "notices" not in app.extensions  # not even the fingerprint was read
        assert pinned(web, kind=("notice",)) == ["heater", "battery"]


def test_cached_notices_expire_at_the_time_of_each_request(app: Flask) -> None:
    web = get_library(app)
    with app.app_context():
        assert "battery" in ids(
            active_urgent_notices(web, now=datetime(2026, 12, 31, 23, 59, 58, tzinfo=JST))
        )
        after = datetime(2027, 1, 1, 0, 0, tzinfo=JST)
        assert "battery" not in ids(active_urgent_notices(web, now=after))
        assert ids(pinned_notices(web, Query(text="モバイルバッテリー"), now=after)) == []
        assert cache_of(app).loads == 1  # nothing was re-read: expiry is decided per request


def test_callers_cannot_change_the_cached_notices(app: Flask) -> None:
    web = get_library(app)
    with app.app_context():
        (battery,) = pinned_notices(web, Query(text="サンプル電機"), now=NOW)
        battery["title"] = "書き換え"
        assert pinned_notices(web, Query(text="サンプル電機"), now=NOW)[0]["title"] != "書き換え"


def test_the_search_api_pins_from_the_cache(app: Flask, library: Library) -> None:
    # The heater notice has no valid_until, so this holds whatever today is.
    clock = [1000.0]
    app.extensions["notices"] = NoticeCache(clock=lambda: clock[0])
    client = app.test_client()
    for _ in range(3):
        body = client.get("/api/v1/search?q=ヒーター 転倒").get_json()
        assert [pinned["id"] for pinned in body["pinned"]] == ["heater"]
    assert cache_of(app).loads == 1
    library.ingest(HEATER | {"status": "retracted"}, author="test", summary="withdrawn")  # another process
    clock[0] += FINGERPRINT_INTERVAL
    assert client.get("/api/v1/search?q=ヒーター 転倒").get_json()["pinned"] == []


def test_a_change_indexed_by_this_process_is_pinned_at_once(app: Flask) -> None:
    """No waiting for FINGERPRINT_INTERVAL when the change went through this process's own library."""
    web = get_library(app)
    app.extensions["notices"] = NoticeCache(clock=lambda: 1000.0)  # time stands still
    with app.app_context():
        assert pinned(web, "パンや工房") == []
        fresh = notice("toaster", title="トースターの回収", maker="パンや工房", product="カリッとトースター")
        web.ingest(fresh, author="test", summary="new notice")
        assert pinned(web, "パンや工房") == ["toaster"]


@pytest.mark.parametrize("text", ["サンプル電機", "ぬくぬく", "pb10k", "回収 モバイルバッテリー", "製品事故", "ごみ 回収", "豆腐"])
def test_a_search_s_own_terms_pin_what_its_text_pins(shared: Library, text: str) -> None:
    query = Query(text=text)
    terms = shared.search(query).terms  # the page passes these rather than analysing the text again
    assert ids(pinned_notices(shared, query, now=NOW, terms=terms)) == pinned(shared, text)


def test_which_notices_a_query_names_is_worked_out_once_per_notice_list(
    app: Flask, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = get_library(app)
    clock = [1000.0]
    app.extensions["notices"] = NoticeCache(clock=lambda: clock[0])
    checked: list[str] = []
    named_by = notices_module._named_by
    monkeypatch.setattr(notices_module, "_named_by", lambda notice, *rest: checked.append(notice.data["id"])
                        or named_by(notice, *rest))
    with app.app_context():
        for _ in range(3):
            assert pinned(web, "モバイルバッテリー") == ["battery"]
        assert sorted(checked) == ["battery", "expired", "heater"]  # each notice once, for the three searches
        assert pinned(web, "ヒーター 転倒") == ["heater"]
        assert len(checked) == 6  # another query is another match
        library.ingest(notice("battery", status="retracted"), author="test", summary="withdrawn")
        clock[0] += FINGERPRINT_INTERVAL
        assert pinned(web, "モバイルバッテリー") == []  # a new list of notices: worked out again
        assert len(checked) == 8
        assert pinned(web, "ヒーター 転倒") == ["heater"]
        assert len(checked) == 10
        after_expiry = datetime(2099, 1, 1, tzinfo=JST)
        assert ids(pinned_notices(web, Query(text="モバイルバッテリー 回収"), now=after_expiry)) == []
        assert ids(pinned_notices(web, Query(text="ヒーター 転倒"), now=after_expiry)) == ["heater"]
        assert len(checked) == 12  # remembered; whether a notice has expired is still decided per request
