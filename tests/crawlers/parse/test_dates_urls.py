"""Japanese dates and times, and URL resolution, as tables of (input, expected)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from crawlers.parse.dates import find_date, parse_date, parse_datetime, parse_time
from crawlers.parse.urls import absolute_http_url, same_site
from schemas import JST


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026年4月1日", date(2026, 4, 1)),
        ("2026 年 4 月 1 日", date(2026, 4, 1)),
        ("令和8年4月1日", date(2026, 4, 1)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("平成元年1月8日", date(1989, 1, 8)),
        ("昭和64年1月7日", date(1989, 1, 7)),
        ("２０２６／４／１", date(2026, 4, 1)),
        ("2026/4/1", date(2026, 4, 1)),
        ("2026-04-01", date(2026, 4, 1)),
        ("2026.4.1", date(2026, 4, 1)),
        ("2023-6-30(金曜日)", date(2023, 6, 30)),
        ("2026年4月29日（水・祝）", date(2026, 4, 29)),
        (" 2026/4/1 ", date(2026, 4, 1)),
        ("平成32年1月1日", None),  # 平成 ended in its 31st year
        ("令和0年1月1日", None),
        ("2026/2/30", None),
        ("2026/4-1", None),
        ("9999/12/31", None),  # placeholders, outside the years we accept
        ("0001-01-01", None),
        ("2026年4月", None),
        ("4月1日", None),
        ("", None),
    ],
)
def test_parse_date(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9:00", timedelta(hours=9)),
        ("09:30", timedelta(hours=9, minutes=30)),
        ("13:30:00", timedelta(hours=13, minutes=30)),
        ("１０：００", timedelta(hours=10)),
        ("9時", timedelta(hours=9)),
        ("9時30分", timedelta(hours=9, minutes=30)),
        ("午前9時", timedelta(hours=9)),
        ("午後1時半", timedelta(hours=13, minutes=30)),
        ("午後12時", timedelta(hours=12)),
        ("24:00", timedelta(hours=24)),
        ("25時30分", timedelta(hours=25, minutes=30)),  # late-night closing times
        ("0:00", timedelta()),
        ("31:00", None),
        ("9:75", None),
        ("9時頃", None),
        ("", None),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("開催日 2026年5月1日\n掲載日：2026年4月1日\n更新日 2026年4月2日", date(2026, 4, 1)),
        ("開催日 2026年5月1日\n最終更新日：2026/4/2", date(2026, 4, 2)),
        ("公開講座のお知らせ 2026年5月1日", date(2026, 5, 1)),  # 公開 without a date after it is no label
        ("本文 令和8年3月1日 と 2026/1/1", date(2026, 3, 1)),
        ("日付なし", None),
    ],
)
def test_find_date(text, expected):
    assert find_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-04-01T10:00:00Z", datetime.fromisoformat("2026-04-01T10:00:00+00:00")),
        ("2026-04-01T10:00:00", datetime(2026, 4, 1, 10, tzinfo=JST)),
        ("2026-04-01", datetime(2026, 4, 1, tzinfo=JST)),
        ("令和8年4月1日", datetime(2026, 4, 1, tzinfo=JST)),
        ("0001-01-01T00:00:00+14:00", None),
        ("yesterday", None),
    ],
)
def test_parse_datetime(text, expected):
    assert parse_datetime(text) == expected


BASE = "https://www.example.jp/dir/page.html?q=1"


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("other.html#frag", "https://www.example.jp/dir/other.html"),
        ("  /a b\t\n/c  ", "https://www.example.jp/a%20b/c"),
        ("//CDN.Example.JP:443", "https://cdn.example.jp/"),
        ("HTTP://Example.JP:80/x", "http://example.jp/x"),
        ("https://user:secret@example.jp/", "https://example.jp/"),
        ("/日本語/ページ", "https://www.example.jp/日本語/ページ"),
        ("?page=2", "https://www.example.jp/dir/page.html?page=2"),
        ("mailto:a@example.jp", None),
        ("javascript:void(0)", None),
        (" JavaScript:alert(1)", None),
        ("ftp://example.jp/", None),
        ("http://[::1]/", None),
        ("http://example.jp:99999/", None),
        ("http://", None),
        ("#top", "https://www.example.jp/dir/page.html?q=1"),
        ("", None),
        ("https://example.jp/" + "a" * 3000, None),
        ("https://" + "a" * 251 + ".jp/", None),  # longer than a DNS name can be
        ("https://exa\x0cmple.jp/", None),  # whitespace in a host makes no name
        ("https://example.jp/a\x0cb\u3000c", "https://example.jp/a%0Cb%E3%80%80c"),
    ],
)
def test_absolute_http_url(href, expected):
    assert absolute_http_url(href, BASE) == expected


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ("http://example.jp/x", True),
        ("https://www.example.jp/y", True),
        ("https://cdn.example.jp/", False),
        ("https://example.jp.evil.example/", False),
        ("https://other.co.jp/", False),
    ],
)
def test_same_site(other, expected):
    assert same_site("https://www.example.jp/", other) is expected
