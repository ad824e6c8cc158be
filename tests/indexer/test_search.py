"""search(): Japanese queries as users type them, over the real analyzer and the embedded engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.config import Settings
from indexer.engines.base import EngineError
from indexer.library import Library
from indexer.query import parse_query
from indexer.search import Query, QueryError, compile_query
from schemas import JST

RECORDS = [
    {"id": "hosp", "kind": "facility", "title": "市民病院附属リハビリセンター", "body": "病院の附属施設です。",
     "provenance": "government", "organization": "みなと市", "categories": ["health"]},
    {"id": "apply", "kind": "faq", "title": "講座の申込方法", "body": "窓口で申込書を出してください。",
     "provenance": "government", "organization": "みなと市"},
    {"id": "coop-half", "kind": "product", "title": "ｺｰﾌﾟ のり", "body": "焼きのりです。", "maker": "みなと生協",
     "provenance": "coop", "allergens": ["えび"], "categories": ["food"]},
    {"id": "coop-wide", "kind": "product", "title": "ＣＯ・ＯＰ 豆腐", "body": "国産大豆。", "maker": "みなと生協",
     "provenance": "coop", "allergens": ["大豆"], "categories": ["food"]},
    {"id": "tocho", "kind": "program", "title": "東京都庁で物産展", "body": "都内で特産品を販売します。",
     "organizer": "みなと市", "provenance": "government", "starts_at": "2026-12-01T10:00:00"},
    {"id": "pokemon", "kind": "page", "title": "新商品ポケモンゴープラスプラス入荷", "url": "https://example.jp/p",
     "body": "ゲーム売り場にて。", "provenance": "shop"},
    {"id": "battery", "kind": "notice", "title": "モバイルバッテリー回収のお知らせ",
     "body": "充電中に発熱するおそれがあります。使用を中止してください。<script>alert(1)</script>",
     "maker": "サンプル電機", "product": "ポケットチャージ", "hazard": "発熱", "action": "使用を中止し、返送してください",
     "provenance": "maker", "urgent": True, "categories": ["safety.recall"], "published_at": "2026-10-01"},
    {"id": "heater", "kind": "notice", "title": "電気ヒーター点検のお知らせ", "body": "転倒時に電源が切れない。",
     "maker": "サンプル暖房", "product": "ぬくぬく", "hazard": "発火", "action": "点検を受けてください",
     "provenance": "maker", "categories": ["safety.recall"], "published_at": "2025-01-15"},
    {"id": "time", "kind": "program", "title": "おはなし会", "body": "毎週土曜10:30〜11:00に開きます。",
     "organizer": "市立図書館", "provenance": "government", "starts_at": "2026-11-28T10:30:00"},
    {"id": "kominkan", "kind": "facility", "title": "みなと公民館", "body": "講座と集会の施設です。",
     "provenance": "government"},
    {"id": "library", "kind": "facility", "title": "中央図書館の利用案内", "body": "本の貸し出しは一人十冊まで。",
     "provenance": "government"},
]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    data = tmp_path_factory.mktemp("data")
    lib = Library.open(Settings.from_env(data_dir=Path(data), database_url=f"sqlite:///{data}/library.db"))
    for record in RECORDS:
        lib.ingest(record, author="test", summary="fixture")
    yield lib
    lib.close()


def hit_ids(library: Library, text: str, **filters: object) -> list[str]:
    return [hit.id for hit in library.search(Query(text=text, **filters)).hits]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("付属", "hosp"),  # variant kanji: 附属 in the record
        ("申し込み", "apply"),  # okurigana variant: 申込 in the record
        ("コープ", "coop-half"),  # half-width ｺｰﾌﾟ in the record
        ("CO・OP", "coop-wide"),  # full-width ＣＯ・ＯＰ in the record
        ("とうきょう", "tocho"),  # kana finds kanji by reading
        ("都庁", "tocho"),  # a sub-word of 東京都庁
        ("ゴープラス", "pokemon"),  # a substring (中間一致) of an unknown katakana word
        ("ポケモンゴープラスプラス", "pokemon"),  # the unknown word itself
        ("サンプル電機", "battery"),  # a maker field, not in title or body
        ("～", "time"),  # any wave dash finds 〜
        ("~", "time"),
    ],
)
def test_japanese_queries_find_the_record(library: Library, query: str, expected: str) -> None:
    assert expected in hit_ids(library, query)[:3]



@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("としょかん", {"library", "time"}),  # 図書館, read unit by unit (トショ カン)
        ("こうみんかん", {"kominkan"}),
        ("ちゅうおうとしょかん", {"library"}),
        ("こうみんかん こうざ", {"kominkan"}),
    ],
)
def test_kana_compounds_find_their_kanji(library: Library, query: str, expected: set[str]) -> None:
    assert set(hit_ids(library, query)) == expected


def test_kana_compound_hits_are_marked(library: Library) -> None:
    (hit,) = library.search(Query(text="こうみんかん")).hits
    assert hit._title_html is None  # made on first use: the JSON API never shows it
    assert hit.title_html == "みなと<mark>公民館</mark>"
    assert hit._title_html == hit.title_html


@pytest.mark.parametrize("query", ["かん", "しょかん", "とし", "かんとしょ"])
def test_short_or_partial_kana_queries_stay_precise(library: Library, query: str) -> None:
    # 館 alone reads カン: a query of that reading may find it, but never a part of 図書 or the wrong order.
    found = set(hit_ids(library, query))
    assert "library" not in found or query == "かん"
    assert len(found) < len(RECORDS) // 2


def test_a_one_character_query_is_a_cheap_prefix_regex(library: Library) -> None:
    groups, _, _ = compile_query(parse_query("卵"), library.analyzer)
    regexes = {match.regex for match in groups[0][0].alternatives if match.regex}
    assert regexes == {"卵.?"}  # a leading "." would walk the whole bigram dictionary
    assert "coop-wide" not in hit_ids(library, "卵")
    assert hit_ids(library, "豆") == ["coop-wide"]  # the start of a bigram (豆腐)

def test_all_words_must_match_then_relaxes_to_any(library: Library) -> None:
    assert hit_ids(library, "バッテリー 回収") == ["battery"]
    relaxed = library.search(Query(text="バッテリー 豆腐"))
    assert relaxed.relaxed and {hit.id for hit in relaxed.hits} == {"battery", "coop-wide"}


def test_phrase_exclusion_and_or(library: Library) -> None:
    assert hit_ids(library, '"使用を中止"') == ["battery"]
    assert hit_ids(library, '"中止を使用"') == []
    assert "heater" not in hit_ids(library, "お知らせ -ヒーター")
    assert set(hit_ids(library, "豆腐 OR のり")) == {"coop-half", "coop-wide"}


def test_title_matches_rank_above_body_matches(library: Library) -> None:
    ids = hit_ids(library, "病院")
    assert ids[0] == "hosp"


def test_filters_facets_and_labels(library: Library) -> None:
    results = library.search(Query(text="", kind=("notice",)))
    assert {hit.id for hit in results.hits} == {"battery", "heater"}
    kinds = {facet.value: (facet.label, facet.count) for facet in results.facets["kind"]}
    assert kinds == {"notice": ("お知らせ・リコール", 2)}
    provenance = {facet.value: facet.label for facet in library.search(Query()).facets["provenance"]}
    assert provenance["maker"] == "メーカー公式"
    dated = library.search(Query(text="お知らせ", date_from=datetime(2026, 1, 1, tzinfo=JST)))
    assert [hit.id for hit in dated.hits] == ["battery"]
    assert hit_ids(library, "", category=("food",), provenance=("coop",), sort="newest") != []


def test_sort_by_newest_and_by_event(library: Library) -> None:
    assert hit_ids(library, "お知らせ", sort="newest") == ["battery", "heater"]
    assert hit_ids(library, "", kind=("program",), sort="event") == ["time", "tocho"]


def test_snippets_are_escaped_and_marked(library: Library) -> None:
    hit = library.search(Query(text="発熱")).hits[0]
    assert "<mark>発熱</mark>" in hit.snippet
    assert "<script>" not in hit.snippet and "&lt;script&gt;" in hit.snippet
    assert "<mark>" in library.search(Query(text="バッテリー")).hits[0].title_html


def test_snippets_tokenize_a_body_only_where_the_index_has_the_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hit found by its title, whose body shares a character with the query but not the word, is shown
    without tokenizing its body; a body holding a variant spelling (附属 for 付属) is still marked."""
    lib = Library.open(Settings.from_env(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/library.db"))
    try:
        lib.ingest({"id": "hall", "kind": "facility", "title": "市民会館の大ホール", "provenance": "government",
                    "body": "大きな会議室もあります。"}, author="test", summary="fixture")
        lib.ingest({"id": "annex", "kind": "facility", "title": "市民病院の案内", "provenance": "government",
                    "body": "病院の附属施設です。"}, author="test", summary="fixture")
        tokenized: list[str] = []
        tokenize = lib.analyzer._tokenized

        def counting(norm: str):  # type: ignore[no-untyped-def]
            tokenized.append(norm)
            return tokenize(norm)

        monkeypatch.setattr(lib.analyzer, "_tokenized", counting)
        hall = lib.search(Query(text="会館")).hits
        assert [hit.id for hit in hall] == ["hall"] and hall[0].snippet == "大きな会議室もあります。"
        assert tokenized == ["会館"]  # the query itself; 会 is shared with the body, which is not read
        annex = lib.search(Query(text="付属")).hits
        assert [hit.id for hit in annex] == ["annex"] and "<mark>附属</mark>" in annex[0].snippet

        def refusing(query):  # type: ignore[no-untyped-def]
            if query.filters.ids:
                raise EngineError("down")
            return search(query)

        search = lib.engine.search
        monkeypatch.setattr(lib.engine, "search", refusing)
        tokenized.clear()
        assert lib.search(Query(text="会館")).hits[0].snippet == "大きな会議室もあります。"
        assert len(tokenized) == 2  # the index could not answer: the body is read, as it would be without it
    finally:
        lib.close()


def test_pagination_and_totals(library: Library) -> None:
    first = library.search(Query(text="", size=4, page=1, sort="newest"))
    second = library.search(Query(text="", size=4, page=2, sort="newest"))
    assert first.total == second.total == len(RECORDS)
    assert not {h.id for h in first.hits} & {h.id for h in second.hits}
    assert first.took_ms > 0


@pytest.mark.parametrize(
    "bad",
    [Query(size=0), Query(size=101), Query(page=0), Query(sort="random"),  # type: ignore[arg-type]
     Query(date_from=datetime(2026, 2, 1, tzinfo=JST), date_to=datetime(2026, 1, 1, tzinfo=JST))],
)
def test_out_of_range_parameters_are_refused_in_japanese(library: Library, bad: Query) -> None:
    with pytest.raises(QueryError) as error:
        library.search(bad)
    assert any("\u3040" <= ch <= "\u9fff" for ch in str(error.value))


HOSTILE = [
    '"', '""', '"""', "((((", ")))", "AND", "OR OR OR", "NOT NOT", "*", "?", "\\", "-", "--電池", "|",
    "a" * 10_240, "電" * 10_240, "\x00", "title_c:電池", "電池^10", "電池~2", "[1 TO 5]", "{*}", "/.*/",
    "＂電池", "（電池）", "ＯＲ", "－", "NEAR(電池 回収)", "電池 AND -", "\U0001F600", "\ud800", "<mark>",
    "'; DROP TABLE records; --", "%00", "\u202e電池", "𠮷野家", "ｱｲｳｴｵ" * 500,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_queries_never_raise_and_finish_quickly(library: Library, text: str) -> None:
    started = time.perf_counter()
    results = library.search(Query(text=text))
    assert results.total >= 0
    assert time.perf_counter() - started < 5  # generous for CI; the benchmark measures real latency


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_any_text_is_a_valid_query(library: Library, text: str) -> None:
    for hit in library.search(Query(text=text)).hits:
        assert "<script" not in hit.snippet
