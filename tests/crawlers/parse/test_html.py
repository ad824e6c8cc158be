"""extract_html / page_draft on pages written here: main text, title, dates, canonical URL, links, charset."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from crawlers.charset import CharsetSource
from crawlers.parse import ParseError
from crawlers.parse.html import MAX_TAGS, document_url, extract_html, page_draft
from schemas import JST

URL = "https://www.city.example.lg.jp/soshiki/toshokan/news/2026/0401.html"

ARTICLE = """<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="{charset}">
<title>年末年始の休館について｜例市立図書館</title>
<link rel="stylesheet" href="/css/site.css">
<link rel="canonical" href="/soshiki/toshokan/news/2026/0401.html?utm=x#top">
<style>body {{ color: black; }}</style>
<script>var message = "スクリプトの文字";</script>
</head>
<body>
<header id="site-header"><p class="logo">例市</p>
<nav><ul><li><a href="/">ホーム</a></li><li><a href="/kurashi/">くらし・手続き</a></li></ul></nav>
</header>
<div id="pankuzu"><a href="/">トップ</a> &gt; <a href="/soshiki/">組織</a> &gt; お知らせ</div>
<main>
<h1>年末年始の休館について</h1>
<p class="date">掲載日：令和8年4月1日</p>
<p>市立図書館は、<strong>12月28日（日曜日）</strong>から1月4日（日曜日）まで休館します。</p>
<p>休館中の返却は、ブックポストをご利用ください。<br>CD・DVD はブックポストに入れないでください。</p>
<table><tr><th>館名</th><th>休館期間</th></tr><tr><td>中央図書館</td><td>12月28日から1月4日</td></tr></table>
<form action="/search"><input name="q"><button>検索</button></form>
<noscript>JavaScript を有効にしてください</noscript>
<p hidden>隠し文字</p>
<div class="sns-share share"><a href="https://sns.example/share">共有</a></div>
<p>詳しくは <a href="/soshiki/toshokan/calendar.html#december">開館カレンダー</a> をご覧ください。</p>
</main>
<aside><h2>関連情報</h2><a href="https://other.example.com/">他のサイト</a></aside>
<footer><p>例市役所 〒000-0000 例市本町1-1</p>
<a href="mailto:toshokan@city.example.lg.jp">メール</a>
<a href="javascript:void(0)">印刷</a>
<a href="/login" rel="nofollow">ログイン</a>
<a href="/kurashi/#top">くらし（重複）</a>
</footer>
</body>
</html>
"""

MAIN_TEXT = (
    "年末年始の休館について\n"
    "掲載日：令和8年4月1日\n"
    "市立図書館は、12月28日（日曜日）から1月4日（日曜日）まで休館します。\n"
    "休館中の返却は、ブックポストをご利用ください。\n"
    "CD・DVD はブックポストに入れないでください。\n"
    "館名 休館期間\n"
    "中央図書館 12月28日から1月4日\n"
    "詳しくは 開館カレンダー をご覧ください。"
)


def page(charset: str = "utf-8") -> bytes:
    return ARTICLE.format(charset=charset).encode("cp932" if charset == "Shift_JIS" else charset)


def test_main_content_without_navigation_header_footer_scripts_and_forms():
    result = extract_html(page(), url=URL)
    assert result.text == MAIN_TEXT
    for chrome in ("ホーム", "トップ", "関連情報", "例市役所", "スクリプト", "color", "検索", "JavaScript",
                   "隠し文字", "共有"):
        assert chrome not in result.text


def test_comments_leave_the_text_around_them_as_it_reads():
    html = "<html><body><main><p>市立図書<!-- 改行しない -->館は<!---->月曜休館です。</p><p>次<!-- x --></p></main></body></html>"
    body = extract_html(html.encode(), url=URL).text
    assert "市立図書館は月曜休館です。" in body and "改行しない" not in body
    assert body.splitlines()[-1] == "次"


def test_title_language_and_encoding():
    result = extract_html(page(), url=URL)
    assert result.title == "年末年始の休館について｜例市立図書館"
    assert result.language == "ja"
    assert (result.encoding, result.encoding_source) == ("utf-8", CharsetSource.META)


def test_published_date_from_japanese_era_in_text():
    assert extract_html(page(), url=URL).published_at == datetime(2026, 4, 1, tzinfo=JST)


def test_canonical_resolved_against_the_fetched_url():
    result = extract_html(page(), url=URL + "?from=rss#x")
    assert result.url == URL + "?from=rss"
    assert result.canonical_url == URL + "?utm=x"


def test_links_absolute_deduplicated_without_fragments_nofollow_mailto_javascript():
    result = extract_html(page(), url=URL)
    assert result.links == (
        "https://www.city.example.lg.jp/",
        "https://www.city.example.lg.jp/kurashi/",
        "https://www.city.example.lg.jp/soshiki/",
        "https://sns.example/share",
        "https://www.city.example.lg.jp/soshiki/toshokan/calendar.html",
        "https://other.example.com/",
    )


@pytest.mark.parametrize("charset", ["Shift_JIS", "EUC-JP"])
def test_the_same_page_in_another_encoding_gives_identical_text(charset):
    utf8 = extract_html(page(), url=URL)
    other = extract_html(page(charset), url=URL)
    assert (other.title, other.text, other.published_at, other.links) == (
        utf8.title, utf8.text, utf8.published_at, utf8.links)
    assert other.encoding == {"Shift_JIS": "cp932", "EUC-JP": "euc_jp"}[charset]


def test_header_charset_wins_and_undeclared_cp932_is_detected():
    body = "<html><body><p>髙橋さんの①番目のお知らせです。ご確認ください。</p></body></html>".encode("cp932")
    declared = extract_html(body, url=URL, content_type="text/html; charset=Shift_JIS")
    detected = extract_html(body, url=URL)
    assert declared.text == detected.text == "髙橋さんの①番目のお知らせです。ご確認ください。"
    assert declared.encoding_source == CharsetSource.HEADER
    assert detected.encoding_source == CharsetSource.DETECTED


@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        ('<meta property="article:published_time" content="2026-03-05T10:30:00+09:00">', "",
         datetime(2026, 3, 5, 10, 30, tzinfo=JST)),
        (('<script type="application/ld+json">{"@context": "https://schema.org", "@graph": '
          '[{"@type": "WebPage"}, {"@type": "NewsArticle", "datePublished": "2026-02-01"}]}</script>'), "",
         datetime(2026, 2, 1, tzinfo=JST)),
        ("", '<article><time datetime="2026-01-15T08:00:00Z">1月15日</time><p>本文の段落です。</p></article>',
         datetime.fromisoformat("2026-01-15T08:00:00+00:00")),
        ("", "<p>更新日：2026年3月31日</p><p>公開日：平成31年4月30日</p>", datetime(2019, 4, 30, tzinfo=JST)),
        ("", "<p>最終更新日 2026/3/31</p><p>開催は2026年5月1日です。</p>", datetime(2026, 3, 31, tzinfo=JST)),
        ("", "<p>令和元年5月1日に開館しました。</p>", datetime(2019, 5, 1, tzinfo=JST)),
        ("", "<p>２０２６年４月１日（水曜日）から受付</p>", datetime(2026, 4, 1, tzinfo=JST)),
        ("", "<p>日付のないページです。令和99年13月40日。</p>", None),
    ],
    ids=["meta", "json-ld", "time", "labelled-heisei", "labelled-updated", "reiwa-gannen", "full-width",
         "none"],
)
def test_published_at_sources_in_order(head, body, expected):
    html = f"<html><head>{head}</head><body>{body}</body></html>".encode()
    assert extract_html(html, url=URL).published_at == expected


def test_broken_json_ld_is_ignored():
    html = b'<script type="application/ld+json">{"datePublished": </script><p>2026-04-01</p>'
    assert extract_html(html, url=URL).published_at == datetime(2026, 4, 1, tzinfo=JST)
    deep = b'<script type="application/ld+json">' + b"[" * 100_000 + b"</script>"
    assert extract_html(deep, url=URL).published_at is None


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("https://city.example.lg.jp/soshiki/toshokan/news/2026/0401.html", "https://city.example.lg.jp/soshiki/toshokan/news/2026/0401.html"),
        ("http://www.city.example.lg.jp/a", "http://www.city.example.lg.jp/a"),
        ("//WWW.CITY.EXAMPLE.LG.JP:443/b", "https://www.city.example.lg.jp/b"),
        ("https://evil.example/phish", URL),
        ("https://pref.example.lg.jp/a", URL),
        ("javascript:alert(1)", URL),
        ("data:text/html,x", URL),
        ("https://[::1]/", URL),
        ("http://www.city.example.lg.jp:99999/", URL),
        ("", URL),
    ],
)
def test_canonical_only_http_on_the_same_site(href, expected):
    html = f'<html><head><link rel="canonical" href="{href}"></head><body><p>本文</p></body></html>'
    assert extract_html(html.encode(), url=URL).canonical_url == expected


def test_base_href_resolves_links_and_canonical():
    html = (b'<head><base href="https://www.city.example.lg.jp/archive/"><link rel=canonical href="x.html">'
            b'</head><body><a href="y.html">y</a></body>')
    result = extract_html(html, url=URL)
    assert result.canonical_url == "https://www.city.example.lg.jp/archive/x.html"
    assert result.links == ("https://www.city.example.lg.jp/archive/y.html",)


def test_densest_block_without_main_or_article():
    html = """<html><body>
    <div id="menu-area"><ul>{menu}</ul></div>
    <div class="layout">
      <div id="contents"><h2>子育て支援センター</h2>
        <p>子育て支援センターでは、乳幼児とその保護者が自由に遊べる場を提供しています。</p>
        <p>育児相談も受け付けています。お気軽にお越しください。</p></div>
      <div class="side-links">{links}</div>
    </div>
    <div class="copyright">Copyright 例市</div></body></html>""".format(
        menu="".join(f'<li><a href="/m{i}">メニュー項目{i}</a></li>' for i in range(30)),
        links="".join(f'<p><a href="/l{i}">関連リンク項目その{i}</a></p>' for i in range(20)),
    )
    result = extract_html(html.encode(), url=URL)
    assert result.text == (
        "子育て支援センター\n"
        "子育て支援センターでは、乳幼児とその保護者が自由に遊べる場を提供しています。\n"
        "育児相談も受け付けています。お気軽にお越しください。"
    )


def test_a_lone_article_is_the_main_content_and_keeps_its_own_header():
    html = ("<body><header>サイト名</header><article><header><h1>記事の見出し</h1>"
            "<p>2026年4月1日</p></header><p>記事の本文です。</p><footer>タグ: 図書館</footer></article>"
            "<footer>フッター</footer></body>")
    result = extract_html(html.encode(), url=URL)
    assert result.text == "記事の見出し\n2026年4月1日\n記事の本文です。\nタグ: 図書館"


def test_title_falls_back_to_og_title_then_h1_then_first_line():
    assert extract_html(b'<meta property="og:title" content="OG"><h1>H</h1>', url=URL).title == "OG"
    heading = "<title>  </title><h1>\n  見出し\n  その2 </h1>".encode()
    assert extract_html(heading, url=URL).title == "見出し その2"
    assert extract_html("<p>最初の行</p><p>次の行</p>".encode(), url=URL).title == "最初の行"


def test_language_from_lang_attribute_or_kana():
    assert extract_html(b'<html lang="en-US"><p>Hello</p></html>', url=URL).language == "en-us"
    assert extract_html(b'<html lang="not a tag!"><p>Hello</p></html>', url=URL).language is None
    assert extract_html("<p>ひらがな</p>".encode(), url=URL).language == "ja"


def test_page_draft_validates(assert_valid):
    draft = page_draft(extract_html(page(), url=URL))
    assert draft == {
        "kind": "page",
        "title": "年末年始の休館について｜例市立図書館",
        "body": MAIN_TEXT,
        "url": URL + "?utm=x",
        "site": "www.city.example.lg.jp",
        "published_at": "2026-04-01T00:00:00+09:00",
    }
    assert_valid(draft)


def test_page_draft_of_an_empty_page_uses_the_url_as_title(assert_valid):
    draft = page_draft(extract_html(b"", url=URL))
    assert draft["title"] == URL and draft["body"] == ""
    assert_valid(draft)


def test_page_draft_clips_long_title_and_body(assert_valid):
    html = f"<title>{'題' * 600}</title><p>{'本' * 250_000}</p>".encode()
    draft = page_draft(extract_html(html, url=URL))
    assert len(draft["title"]) == 500 and draft["title"].endswith("…")
    assert len(draft["body"]) == 200_000
    assert_valid(draft)


def test_a_non_http_url_is_a_parse_error():
    with pytest.raises(ParseError, match="http"):
        extract_html(b"<p>x</p>", url="file:///etc/passwd")


def test_deep_nesting_has_no_recursion_error_and_keeps_its_text():
    started = time.thread_time()
    result = extract_html(b"<div>" * 100_000, url=URL)
    assert result.text == ""
    nested = b"<div>" * 5_000 + "奥の文字".encode() + b"</div>" * 5_000 + "<p>後の段落</p>".encode()
    deep = extract_html(nested, url=URL)
    assert deep.text == "奥の文字\n後の段落"
    assert time.thread_time() - started < 2


def test_documents_past_the_tag_budget_are_cut():
    html = "".join(f"<p>段落{i}</p>" for i in range(MAX_TAGS)).encode()
    text = extract_html(html, url=URL).text
    assert text.startswith("段落0\n") and "段落100\n" in text and f"段落{MAX_TAGS - 1}" not in text


def test_document_url_declared_by_the_page():
    assert document_url(page()) is None  # a relative canonical says nothing without a base
    declared = b'<link rel="canonical" href="https://example.jp/a#x"><meta property="og:url" content="https://b.jp/">'
    assert document_url(declared) == "https://example.jp/a"
    assert document_url(b'<meta property="og:url" content="https://b.jp/">') == "https://b.jp/"
