"""The citizens' pages through Flask's test client, over the demo records: every page, parameter and error.

Also the T17 template lint (no `|safe`, no `Markup(` but on the engine's escaped highlights, autoescape only) and
the colour contrast of the style sheet's text pairs.
"""

from __future__ import annotations

import ast
import re
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from indexer.engines.base import EngineError
from indexer.library import Library
from schemas import KIND_MODELS, RecordBase
from search_app import searchlog, views

APP_DIR = Path(views.__file__).parent
TEMPLATES = sorted((APP_DIR / "templates").rglob("*"))
DEMO_KINDS = ("notice", "product", "program", "facility", "faq", "shop", "campaign", "contribution", "page")


def page(client: FlaskClient, url: str, status: int = 200, **kwargs: Any) -> str:
    response = client.get(url, **kwargs)
    assert response.status_code == status, (url, response.status_code)
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def links(html: str, css_class: str) -> list[tuple[str, str]]:
    """(href, text) of the <a> elements whose class list includes `css_class`."""
    found = []
    for match in re.finditer(r"<a ([^>]*)>(.*?)</a>", html, re.DOTALL):
        attributes, inner = match.groups()
        classes = re.search(r'class="([^"]*)"', attributes)
        if classes and css_class in classes.group(1).split():
            href = unescape(re.search(r'href="([^"]*)"', attributes).group(1))  # type: ignore[union-attr]
            text = " ".join(unescape(re.sub(r"<[^>]+>", " ", inner)).split())
            found.append((href, text))
    return found


def hit_titles(html: str) -> list[str]:
    return [
        unescape(re.sub(r"<[^>]+>", "", title))
        for title in re.findall(r'class="hit__title"><a href="[^"]*">(.*?)</a>', html, re.DOTALL)
    ]


def params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


# --- every page ----------------------------------------------------------------------------------------------------

PAGES = [
    "/",
    "/search",
    "/search?q=モバイルバッテリー",
    "/search?q=ばってりい",
    "/search?kind=program&sort=event",
    "/records/demo-notice-001",
    "/records/no-such-record",
    "/search?sort=sideways",
]


@pytest.mark.parametrize("url", PAGES)
def test_pages_share_the_layout_and_run_no_inline_code(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    html = response.get_data(as_text=True)
    assert response.content_type == "text/html; charset=utf-8"
    assert '<html lang="ja">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<a class="skip-link" href="#main">本文へ移動</a>' in html and '<main id="main"' in html
    assert (
        '<link rel="search" type="application/opensearchdescription+xml" title="社会ライブラリ" href="/opensearch.xml">'
        in html
    )
    assert 'type="application/atom+xml" title="緊急のお知らせ（Atom）" href="/notices.atom"' in html
    assert re.search(
        r'type="application/atom\+xml" title="この検索の新着（Atom）" href="/search\.atom[^"]*"', html
    )
    # The CSP forbids inline script; inline styles and handlers are avoided too.
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert "<style" not in html and not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)
    assert "javascript:" not in html


def test_static_files_are_served(client: FlaskClient) -> None:
    for name, mimetype in (
        ("app.css", "text/css"),
        ("app.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.mimetype == mimetype
        response.close()


# --- home ------------------------------------------------------------------------------------------------------------


def test_home_has_the_search_box_urgent_notices_and_categories(client: FlaskClient) -> None:
    html = page(client, "/")
    assert '<form class="search search--hero" action="/search" method="get" role="search">' in html
    assert '<label class="search__label" for="q">キーワードで探す</label>' in html
    assert 'id="q" class="search__input" name="q" type="search"' in html
    assert 'data-suggest-url="/api/v1/suggest"' in html
    urgent = html[html.index('id="urgent-heading"') : html.index('id="kinds-heading"')]
    assert "モバイルバッテリー「ポケットチャージ10000」回収・無償交換のお知らせ" in urgent  # valid until 2027
    assert "ころころどうぶつ" in urgent
    assert "ぬくぬくスリム" not in urgent  # urgent, but its valid_until (2025-12-31) has passed
    assert "米粉のしおさいクッキー" not in urgent  # not urgent
    assert 'href="/records/demo-notice-001"' in urgent
    assert 'href="/search?category=safety"' in html and ">安全・リコール</a>" in html
    assert 'href="/search?category=safety.recall"' in html
    assert 'href="/search?kind=notice"' in html
    assert 'id="newest-heading"' in html and html.count('class="hit"') == 5


def test_home_with_a_query_goes_to_the_results(client: FlaskClient) -> None:
    response = client.get("/?q=図書館&kind=facility")
    assert response.status_code == 302
    assert params(response.headers["Location"]) == {"q": ["図書館"], "kind": ["facility"]}


def test_home_still_shows_notices_when_the_engine_is_down(
    client: FlaskClient, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library, "search", _engine_down)
    html = page(client, "/")
    assert "緊急のお知らせ" in html and "カテゴリから探す" in html
    assert 'id="newest-heading"' not in html


def _engine_down(*_: object, **__: object) -> None:
    raise EngineError("down")


# --- results ---------------------------------------------------------------------------------------------------------


def test_results_show_highlights_badges_and_details(client: FlaskClient) -> None:
    html = page(client, "/search?q=モバイルバッテリー")
    assert "<title>「モバイルバッテリー」の検索結果 - 社会ライブラリ</title>" in html
    assert (
        '<a href="/records/demo-notice-001"><mark>モバイルバッテリー</mark>「ポケットチャージ10000」' in html
    )
    assert "販売した<mark>モバイルバッテリー</mark>の一部" in html
    assert '<span class="badge badge--kind">お知らせ・リコール</span>' in html
    assert (
        '<span class="badge badge--maker">メーカー公式</span> <span class="verified">2026年3月2日（月）に確認</span>'
        in html
    )
    for label, value in (
        ("メーカー", "株式会社サンプル電機"),
        ("重要度", "重大"),
        ("掲載期限", "2027年12月31日（金） 23:59"),
    ):
        assert f"<div><dt>{label}</dt><dd>{value}</dd></div>" in html
    assert "<strong>1</strong>件" in html
    assert 'value="モバイルバッテリー"' in html  # the box keeps the query


def test_program_hits_show_date_and_place(client: FlaskClient) -> None:
    html = page(client, "/search?q=防災訓練&kind=program")
    assert "<div><dt>日時</dt><dd>2026年9月6日（日） 9:00〜12:00</dd></div>" in html
    assert "<div><dt>会場</dt><dd>市内全域（主会場：みなと市立南小学校）</dd></div>" in html


@pytest.mark.parametrize(
    ("provenance", "label"),
    [("maker", "メーカー公式"), ("government", "行政"), ("npo", "NPO確認済み"), ("coop", "生協")],
)
def test_provenance_badges(client: FlaskClient, provenance: str, label: str) -> None:
    html = page(client, f"/search?provenance={provenance}&size=50")
    assert (
        html.count(f'<span class="badge badge--{provenance}">{label}</span>') == html.count('class="hit"') > 0
    )


@pytest.mark.parametrize(("kind", "label"), [("contribution", "市民投稿"), ("shop", "店舗")])
def test_a_provenance_named_like_the_kind_is_badged_once(client: FlaskClient, kind: str, label: str) -> None:
    html = page(client, f"/search?kind={kind}&provenance={'citizen' if kind == 'contribution' else 'shop'}")
    assert html.count(f'<span class="badge badge--kind">{label}</span>') == html.count('class="hit"') > 0
    assert "badge--citizen" not in html and "badge--shop" not in html


def test_facets_have_counts_and_narrow_on_click(client: FlaskClient) -> None:
    html = page(client, "/search?q=みなと")
    facets = links(html, "facet__link")
    program = next(href for href, text in facets if text.startswith("催し・制度"))
    assert params(program) == {"q": ["みなと"], "kind": ["program"]}
    count = int(re.findall(r"\d+", next(text for href, text in facets if href == program))[-1])
    narrowed = page(client, program)
    assert f"<strong>{count}</strong>件" in narrowed
    assert all('badge--kind">催し・制度' in hit for hit in narrowed.split('<li class="hit">')[1:])
    selected = links(narrowed, "is-selected")
    assert selected and params(selected[0][0]) == {"q": ["みなと"]}  # a selected value's link removes it
    for name in ("kind", "category", "provenance", "organization", "region", "year"):
        assert f'id="facet-{name}"' in html


def test_each_condition_is_removable(client: FlaskClient) -> None:
    url = "/search?q=みなと&kind=program&kind=facility&category=disaster&from=2026-01-01&to=2026-12-31&sort=newest"
    html = page(client, url)
    removals = links(html, "condition__remove")
    assert [unescape(label) for label in re.findall(r'aria-label="「(.*?)」を外す"', html)] == [
        "キーワード：みなと",
        "種別：催し・制度",
        "種別：施設",
        "カテゴリ：防災",
        "開始日：2026-01-01",
        "終了日：2026-12-31",
    ]
    everything = {
        "q": ["みなと"],
        "kind": ["program", "facility"],
        "category": ["disaster"],
        "from": ["2026-01-01"],
        "to": ["2026-12-31"],
        "sort": ["newest"],
    }
    for (href, _), (name, value) in zip(
        removals,
        [
            ("q", "みなと"),
            ("kind", "program"),
            ("kind", "facility"),
            ("category", "disaster"),
            ("from", "2026-01-01"),
            ("to", "2026-12-31"),
        ],
    ):
        expected = {
            key: [v for v in values if (key, v) != (name, value)] for key, values in everything.items()
        }
        assert params(href) == {key: values for key, values in expected.items() if values}
        page(client, href)
    assert links(html, "conditions__clear") == [("/search", "すべて解除")]
    # The header's search box keeps the conditions for the next query.
    assert '<input type="hidden" name="kind" value="program">' in html
    assert '<input type="hidden" name="sort" value="newest">' in html


def date_form(html: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The published-date form: its hidden (name, value) fields and the values of its two date inputs."""
    form = re.search(r'<form class="date-range" action="/search" method="get"[^>]*>(.*?)</form>', html, re.DOTALL)
    assert form, "no date-range form"
    inner = form.group(1)
    assert '<label for="date-from">開始日</label>' in inner and '<label for="date-to">終了日</label>' in inner
    hidden = re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', inner)
    dates = dict(re.findall(r'type="date" name="(from|to)" value="([^"]*)"', inner))
    assert set(dates) == {"from", "to"}
    assert re.search(r'<input id="date-from"[^>]*type="date" name="from"', inner)
    assert re.search(r'<input id="date-to"[^>]*type="date" name="to"', inner)
    return [(unescape(name), unescape(value)) for name, value in hidden], dates


def published_dates(html: str) -> list[tuple[int, int, int]]:
    return [tuple(map(int, m)) for m in re.findall(r"<span>(\d+)年(\d+)月(\d+)日（.）公開</span>", html)]


def total(html: str) -> int:
    found = re.search(r"<strong>([\d,]+)</strong>件", html)
    return int(found.group(1).replace(",", "")) if found else 0


def test_a_date_range_form_narrows_the_search_and_keeps_the_other_conditions(client: FlaskClient) -> None:
    before = page(client, "/search?q=みなと&provenance=npo&sort=newest&size=50")
    hidden, dates = date_form(before)
    assert hidden == [("q", "みなと"), ("provenance", "npo"), ("sort", "newest"), ("size", "50")]
    assert dates == {"from": "", "to": ""}

    # What a browser sends for the form, without any script: the hidden fields, then the two dates.
    after = page(client, "/search", query_string=[*hidden, ("from", "2026-02-01"), ("to", "2026-03-31")])
    assert 0 < total(after) < total(before)
    shown = published_dates(after)
    assert len(shown) == total(after) and all((2026, 2, 1) <= day <= (2026, 3, 31) for day in shown)
    assert [unescape(label) for label in re.findall(r'aria-label="「(.*?)」を外す"', after)] == [
        "キーワード：みなと",
        "情報源：NPO確認済み",
        "開始日：2026-02-01",
        "終了日：2026-03-31",
    ]
    hidden, dates = date_form(after)
    assert dates == {"from": "2026-02-01", "to": "2026-03-31"}
    assert ("from", "2026-02-01") not in hidden and [name for name, _ in hidden] == ["q", "provenance", "sort", "size"]
    # The header's search box carries the range on to the next words.
    assert '<input type="hidden" name="from" value="2026-02-01">' in after.split('class="date-range"')[0]


def test_the_date_form_accepts_one_end_or_none(client: FlaskClient) -> None:
    everything = page(client, "/search?q=みなと")
    only_start = page(client, "/search?q=みなと&from=2026-04-01&to=")
    assert [unescape(label) for label in re.findall(r'aria-label="「(.*?)」を外す"', only_start)] == [
        "キーワード：みなと",
        "開始日：2026-04-01",
    ]
    assert all(day >= (2026, 4, 1) for day in published_dates(only_start))
    blank = page(client, "/search?q=みなと&from=&to=")  # both inputs left empty
    assert hit_titles(blank) == hit_titles(everything)
    assert 'aria-label="「開始日' not in blank


def test_the_date_form_shows_a_timestamp_as_its_date_and_is_there_without_results(client: FlaskClient) -> None:
    _, dates = date_form(page(client, "/search?from=2026-02-01T09:30:00%2B09:00&to=2026-02-28T12:00"))
    assert dates == {"from": "2026-02-01", "to": "2026-02-28"}
    hidden, dates = date_form(page(client, "/search?q=ばってりい&to=2025-01-01"))
    assert hidden == [("q", "ばってりい")] and dates == {"from": "", "to": "2025-01-01"}


def test_a_reversed_date_range_explains_itself(client: FlaskClient) -> None:
    html = page(client, "/search?q=みなと&from=2026-05-01&to=2026-04-01", status=400)
    assert "期間の開始が終了より後になっています" in html


def test_comma_separated_filters_read_as_repeated_ones(client: FlaskClient) -> None:
    html = page(client, "/search?kind=program,facility")
    assert '種別：</span><span class="condition__value">催し・制度' in html
    assert '種別：</span><span class="condition__value">施設' in html


SORT_LABELS = {"relevance": "関連度順", "newest": "新しい順", "event": "開催日順"}


@pytest.mark.parametrize("sort", list(SORT_LABELS))
def test_sort_links(client: FlaskClient, sort: str) -> None:
    html = page(client, f"/search?q=みなと&sort={sort}")
    sorts = html[html.index('<nav class="sort"') : html.index("</nav>", html.index('<nav class="sort"'))]
    assert [text for _, text in links(sorts, "is-current")] == [SORT_LABELS[sort]]
    found = re.findall(r'<li><a href="([^"]*)"[^>]*>([^<]*)</a></li>', sorts)
    assert [(params(unescape(href)).get("sort", ["relevance"])[0], text) for href, text in found] == list(
        SORT_LABELS.items()
    )
    assert all(params(unescape(href))["q"] == ["みなと"] for href, _ in found)


def test_newest_first_and_event_order(client: FlaskClient) -> None:
    newest = page(client, "/search?sort=newest&size=3")
    assert hit_titles(newest)[0] == "みなと市総合防災訓練（津波避難訓練）"  # published 2026-07-15, the latest
    assert "開催日順" in page(client, "/search?kind=program&sort=event")


def test_pagination_is_links(client: FlaskClient) -> None:
    first = page(client, "/search?size=5")
    assert "<strong>47</strong>件" in first and "（1〜5件目）" in first
    numbers = [text for _, text in links(first, "is-current")]
    assert "1" in numbers
    assert 'rel="prev"' not in first
    step = re.search(r'<a class="pagination__step" href="([^"]*)" rel="next">次へ</a>', first)
    assert step and params(unescape(step.group(1))) == {"size": ["5"], "page": ["2"]}
    assert re.findall(r'aria-label="(\d+)ページ目"', first) == ["1", "2", "3", "10"]
    assert '<li class="pagination__gap" aria-hidden="true">…</li>' in first
    second = page(client, unescape(step.group(1)))
    assert "（6〜10件目）" in second and 'rel="prev"' in second
    assert set(hit_titles(first)).isdisjoint(hit_titles(second))
    last = page(client, "/search?size=5&page=10")
    assert "（46〜47件目）" in last and 'rel="next"' not in last


def test_a_page_past_the_end_links_back(client: FlaskClient) -> None:
    html = page(client, "/search?page=50")
    assert "このページには結果がありません（全5ページ）。" in html
    assert '<a href="/search">最初のページへ</a>' in html


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/search?sort=sideways", "並び順（sort）は relevance, newest, event のいずれかで指定してください"),
        ("/search?page=0", "ページは 1〜1000 で指定してください"),
        ("/search?page=two", "ページ（page）は 1〜1000 の整数で指定してください"),
        ("/search?size=500", "件数は 1〜100 で指定してください"),
        ("/search?from=yesterday", "期間の開始（from）は 2026-04-01 のような日付で指定してください"),
        ("/search?from=2026-05-01&to=2026-04-01", "期間の開始が終了より後になっています"),
        ("/search?" + "&".join(f"kind=k{i}" for i in range(21)), "絞り込み条件が多すぎます（20 件まで）"),
        ("/search?q=" + "あ" * 1001, "検索語が長すぎます（1000 文字まで）"),
    ],
)
def test_bad_parameters_explain_themselves(client: FlaskClient, url: str, message: str) -> None:
    html = page(client, url, status=400)
    assert "検索条件を確認してください" in html and message in html
    assert 'role="alert"' in html and '<input id="q"' in html


def test_a_bad_parameter_page_offers_a_way_back(client: FlaskClient) -> None:
    html = page(client, "/search?q=図書館&kind=facility&page=0", status=400)
    assert '<a href="/search?q=%E5%9B%B3%E6%9B%B8%E9%A4%A8">この言葉だけで探し直す</a>' in html
    assert 'value="図書館"' in html
    html = page(client, "/search?q=" + "あ" * 1001, status=400)
    assert '<a href="/search">すべての記録を見る</a>' in html


def test_a_bad_parameter_cannot_inject_markup(client: FlaskClient) -> None:
    html = page(client, '/search?q="><script>alert(1)</script>&page=x', status=400)
    assert "<script>alert(1)" not in html
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_relaxed_results_say_so(client: FlaskClient) -> None:
    html = page(client, "/search?q=モバイルバッテリー 盆踊り大会")
    assert "すべての語を含む結果がないため、いずれかの語を含む結果を表示しています" in html
    assert "すべての語を含む結果がない" not in page(client, "/search?q=モバイルバッテリー")


def test_zero_results_suggest_spellings_from_readings(client: FlaskClient) -> None:
    html = page(client, "/search?q=ばってりい")
    assert "「ばってりい」に一致する情報は見つかりませんでした。" in html
    assert "0件" in html
    spellings = re.findall(
        r'<li><a href="([^"]*)">([^<]*)</a><span class="zero__count">（(\d+)件）</span></li>', html
    )
    assert ("/search?q=" in spellings[0][0]) and spellings[0][1] == "バッテリー"
    assert f"<strong>{spellings[0][2]}</strong>件" in page(client, unescape(spellings[0][0]))
    assert "探し方のヒント" in html
    assert 'href="/search?category=safety"' in html and 'href="/search?category=disaster"' in html


def test_zero_results_suggest_kanji_for_a_misspelled_reading(client: FlaskClient) -> None:
    html = page(client, "/search?q=ぼうさいくんれ")
    assert re.search(r">防災[^<]*</a><span class=\"zero__count\">", html)


def test_zero_results_offer_looser_queries_that_find_something(client: FlaskClient) -> None:
    html = unescape(page(client, "/search?q=フードドライブ&kind=product&provenance=coop"))
    looser = {
        text: href
        for href, text in re.findall(r'<li><a href="([^"]*)">([^<]*)</a><span class="zero__count">', html)
    }
    assert params(looser["絞り込み条件をすべて外す"]) == {"q": ["フードドライブ"]}
    assert params(looser["「種別: 商品」を外す"]) == {"q": ["フードドライブ"], "provenance": ["coop"]}
    assert "「情報源: 生協」を外す" not in looser  # フードドライブ is no product, whoever made it
    excluded = page(client, "/search?q=ビーチ -クリーン")
    assert "「-クリーン」を除いて探す" in unescape(excluded)


def test_zero_results_without_any_way_out_still_help(client: FlaskClient) -> None:
    html = page(client, "/search?q=ｚｚｚｑｑｑ")
    assert "に一致する情報は見つかりませんでした" in html
    assert "もしかして" not in html and "条件をゆるめて探す" not in html
    assert "カテゴリから探す" in html


def test_urgent_notices_are_pinned_above_matching_results(client: FlaskClient) -> None:
    html = page(client, "/search?q=ポケットチャージ")
    pinned = html[html.index('<section class="alert"') : html.index("</section>")]
    assert 'id="pinned-heading"' in pinned and "緊急のお知らせ" in pinned
    assert 'href="/records/demo-notice-001"' in pinned and "重要度：重大" in pinned
    assert html.index('<section class="alert"') < html.index('<ol class="hits"')
    assert 'class="alert"' not in page(client, "/search?q=豆腐")
    assert page(client, "/search?kind=notice").count('class="alert-notice ') == 2


def test_searches_are_logged_and_zero_results_reported(app: Flask, client_as: Any) -> None:
    client = app.test_client()
    for _ in range(2):
        page(client, "/search?q=ばってりい")
    page(client, "/search?q=モバイルバッテリー")
    html = page(client_as("editor"), "/admin/zero-results")
    assert (
        '<td><a href="/search?q=%E3%81%B0%E3%81%A3%E3%81%A6%E3%82%8A%E3%81%84">ばってりい</a></td><td class="num">2</td>'
        in html
    )
    assert "モバイルバッテリー" not in html
    assert searchlog.zero_result_queries(app.extensions["library"], 10) == [("ばってりい", 2)]


# --- record page ----------------------------------------------------------------------------------------------------


def test_record_page_shows_every_field_with_labels_and_provenance(client: FlaskClient) -> None:
    html = page(client, "/records/demo-notice-001")
    assert (
        "<title>モバイルバッテリー「ポケットチャージ10000」回収・無償交換のお知らせ - 社会ライブラリ</title>"
        in html
    )
    for label, value in (
        ("メーカー", "株式会社サンプル電機"),
        ("製品", "モバイルバッテリー ポケットチャージ10000"),
        ("JANコード", '4501234001017<span class="fields__sep">、</span>4501234001024'),
        ("型番", 'SB-PB10K-W<span class="fields__sep">、</span>SB-PB10K-B'),
        ("重要度", "重大"),
        ("緊急", "はい"),
        ("掲載期限", "2027年12月31日（金） 23:59"),
        ("公開日", "2026年1月20日（火） 10:00"),
    ):
        assert f"<dt>{label}</dt>\n            <dd>{value}</dd>" in html
    for label in (
        "ロット番号",
        "危険の内容",
        "対応のお願い",
        "問い合わせ先",
        "発信元",
        "地域",
        "カテゴリ",
        "タグ",
        "更新日",
    ):
        assert f"<dt>{label}</dt>" in html
    assert '<a href="/search?category=safety.recall">リコール・回収</a>' in html
    assert (
        '<a class="source-box__link" href="https://www.sample-denki.example.com/recall/2026-pb10k" '
        'rel="noopener noreferrer">' in html
    )
    assert "<dt>最終確認日</dt><dd>2026年3月2日（月）</dd>" in html
    assert re.search(r"<dt>改訂</dt><dd>第1版（\d{4}年\d+月\d+日（.）に登録）</dd>", html)
    assert '<span class="badge badge--urgent">緊急</span>' in html and 'class="alert alert--inline"' in html
    assert '<a href="/search?kind=notice">お知らせ・リコール</a>' in html  # breadcrumbs


@pytest.mark.parametrize("kind", DEMO_KINDS)
def test_record_pages_of_every_kind_list_their_fields(
    client: FlaskClient, library: Library, kind: str
) -> None:
    with library.store.session(readonly=True) as session:
        from sqlalchemy import select

        from indexer.store import RecordRow

        rows = session.scalars(select(RecordRow).where(RecordRow.kind == kind)).all()
    assert rows
    for row in rows:
        html = page(client, f"/records/{row.id}")
        for name, value in row.data.items():
            if value in (None, "", []) or name in views.NOT_LISTED:
                continue
            assert f"<dt>{views.field_label(kind, name)}</dt>" in html, (row.id, name)


def test_every_field_of_every_kind_has_a_japanese_label() -> None:
    for kind, model in KIND_MODELS.items():
        for name in model.model_fields:
            if name not in views.NOT_LISTED:
                label = views.field_label(kind, name)
                assert label and not label.isascii(), (kind, name)
    assert set(views.COMMON_FIELDS) <= set(RecordBase.model_fields)


def test_linked_records_show_their_titles(client: FlaskClient) -> None:
    html = page(client, "/records/demo-campaign-001")
    shops = re.findall(r'<a href="/records/(demo-shop-\d+)">([^<]+)</a>', html)
    assert shops and all(title and not title.startswith("demo-") for _, title in shops)


def test_related_records_leave_the_record_out(client: FlaskClient) -> None:
    html = page(client, "/records/demo-notice-001")
    related = html[html.index('id="related-heading"') :]
    hrefs = re.findall(r'class="hit__title"><a href="(/records/[^"]+)"', related)
    assert 1 <= len(hrefs) <= 5 and "/records/demo-notice-001" not in hrefs
    assert "<mark>" not in related  # related records were not asked for with these words


def test_record_page_survives_an_engine_failure(
    client: FlaskClient, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library, "search", _engine_down)
    html = page(client, "/records/demo-facility-001")
    assert "みなと市立図書館（中央館）" in html and 'id="related-heading"' not in html


def test_search_answers_503_when_the_engine_is_down(
    client: FlaskClient, library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(library, "search", _engine_down)
    html = page(client, "/search?q=図書館", status=503)
    assert '<h1 id="error-heading">' in html


def test_unknown_and_unpublished_records_are_404(client: FlaskClient, library: Library) -> None:
    html = page(client, "/records/no-such-record", status=404)
    assert "この記録は存在しないか、公開が終わっています。" in html and "エラー 404" in html
    library.ingest(
        {
            "id": "pending-faq",
            "kind": "faq",
            "title": "確認待ちの質問",
            "provenance": "citizen",
            "status": "pending",
        },
        author="test",
        summary="pending",
    )
    assert "確認待ちの質問" not in page(client, "/records/pending-faq", status=404)


def test_unknown_urls_get_the_japanese_error_page(client: FlaskClient) -> None:
    html = page(client, "/no/such/page", status=404)
    assert "エラー 404" in html and '<input id="q"' in html


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1", "https://example.com/a?b=1"),
        ("HTTP://example.com/", "HTTP://example.com/"),
        ("javascript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("//example.com/", None),
        ("", None),
        (None, None),
    ],
)
def test_only_http_links_are_rendered(url: str | None, expected: str | None) -> None:
    assert views.safe_link(url) == expected


# --- admin ------------------------------------------------------------------------------------------------------------


def test_zero_results_page_needs_an_editor_login(client: FlaskClient, client_as: Any) -> None:
    response = client.get("/admin/zero-results")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=/admin/zero-results")
    assert client_as("citizen").get("/admin/zero-results").status_code == 403
    assert client_as("shop").get("/admin/zero-results").status_code == 403


@pytest.mark.parametrize("role", ["editor", "admin"])
def test_zero_results_page_for_curators(client_as: Any, role: str) -> None:
    response = client_as(role).get("/admin/zero-results")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "結果が0件だった検索はまだありません。" in response.get_data(as_text=True)


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


# --- T17: template lint ---------------------------------------------------------------------------------------------


def test_templates_are_autoescaped_html(app: Flask) -> None:
    files = [path for path in TEMPLATES if path.is_file()]
    assert files and all(path.suffix == ".html" for path in files)
    assert all(app.jinja_env.autoescape(path.name) for path in files)  # type: ignore[operator]
    assert not app.jinja_env.extensions  # no extension that could switch escaping off


@pytest.mark.parametrize("path", [p for p in TEMPLATES if p.is_file()], ids=lambda p: p.name)
def test_templates_never_mark_data_safe(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert not re.search(r"\|\s*safe\b", source)
    assert not re.search(r"autoescape\s+(false|off)", source, re.IGNORECASE)
    assert "Markup" not in source and "|e(" not in source
    assert not re.search(r"\|\s*(urlize|tojson|xmlattr)\b", source)


def test_markup_is_only_made_of_the_engines_escaped_highlights() -> None:
    calls = []
    for path in sorted(APP_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "Markup":
                calls.append((path.name, ast.unparse(node)))
    assert sorted(calls) == [("views.py", "Markup(hit.snippet)"), ("views.py", "Markup(hit.title_html)")]


def test_suggestions_are_inserted_as_text() -> None:
    script = (APP_DIR / "static" / "app.js").read_text(encoding="utf-8")
    assert "textContent" in script
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script


def test_stored_markup_is_escaped_in_results_and_record_pages(client: FlaskClient, library: Library) -> None:
    payload = '"><img src=x onerror=alert(1)></mark><script>alert(2)</script>'
    library.ingest(
        {
            "id": "xss-one",
            "kind": "faq",
            "title": f"危険な題名 {payload}",
            "body": f"本文 {payload}",
            "provenance": "citizen",
        },
        author="test",
        summary="xss",
    )
    for html in (page(client, "/search?q=危険な題名"), page(client, "/records/xss-one")):
        assert "<img" not in html and "<script>alert" not in html and "</mark><script>" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


# --- contrast --------------------------------------------------------------------------------------------------------

# (text, background) custom properties used together in app.css.
TEXT_PAIRS = [
    ("ink", "paper"),
    ("ink", "paper-soft"),
    ("ink-muted", "paper"),
    ("ink-muted", "paper-soft"),
    ("ink-muted", "brand-soft"),
    ("link", "paper"),
    ("link", "paper-soft"),
    ("link", "brand-soft"),
    ("link-visited", "paper"),
    ("brand-ink", "brand"),
    ("ink", "mark"),
    ("urgent", "urgent-soft"),
    ("urgent", "paper"),
    ("paper", "urgent"),
    ("ink", "urgent-soft"),
    ("ink", "info-soft"),
    ("focus-edge", "focus"),
]


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_text_colours_meet_wcag_aa_contrast() -> None:
    css = (APP_DIR / "static" / "app.css").read_text(encoding="utf-8")
    palette = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6});", css))
    for text, background in TEXT_PAIRS:
        ratio = contrast(palette[text], palette[background])
        assert ratio >= 4.5, (text, background, round(ratio, 2))
    # The badge colours are written out in their rules: each text colour on its own background.
    for colour, background in re.findall(
        r"\.badge--[a-z]+ \{\s*color: (#[0-9a-f]{6});\s*background: (#[0-9a-f]{6});", css
    ):
        assert contrast(colour, background) >= 4.5, (colour, background)
