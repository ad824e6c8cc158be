"""Sources: definitions checked when added, schedules, the web scope, and the `library sources` commands."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab, schedule
from click.testing import CliRunner

from crawlers.sources import SourceError, WebScope, add_source, list_sources, parse_schedule
from indexer.cli import main
from indexer.store import CrawlRunRow, SourceRow, Store


@pytest.fixture()
def store(database_url: str) -> Iterator[Store]:
    store = Store.open(database_url, migrate=True)
    yield store
    store.dispose()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3600", schedule(timedelta(hours=1))),
        ("0 6 * * 1-5", crontab(minute="0", hour="6", day_of_week="1-5")),
        ("*/30 * 1 4 *", crontab(minute="*/30", day_of_month="1", month_of_year="4")),
        ("@daily", crontab(minute="0", hour="3")),
    ],
)
def test_schedules_are_seconds_or_cron_lines(text: str, expected: schedule | crontab) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("60", "300 秒以上"),  # politeness: no source is crawled every minute
        ("0 6 * *", "cron 形式"),
        ("61 * * * *", "読めません"),
        ("毎朝", "cron 形式"),
    ],
)
def test_bad_schedules_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_schedule(text)


def test_a_web_source_is_stored_with_its_scope_and_defaults(store: Store) -> None:
    row = add_source(store, "web", ["HTTPS://Example.JP/news/", "https://example.jp/events/#top"],
                     provenance="government", organization="サンプル市", include=[r"/news/|/events/"],
                     schedule="0 6 * * *")
    with store.session(readonly=True) as session:
        stored = session.get_one(SourceRow, row.id)
    assert (stored.kind, stored.location, stored.enabled) == ("web", "https://example.jp/news/", True)
    assert stored.options == {
        "start_urls": ["https://example.jp/news/", "https://example.jp/events/"],
        "include": [r"/news/|/events/"],
        "exclude": [],
        "depth": 3,
        "max_pages": 500,
    }
    assert (stored.provenance, stored.organization, stored.schedule) == ("government", "サンプル市", "0 6 * * *")


@pytest.mark.parametrize(
    ("kind", "locations", "options", "message"),
    [
        ("ftp", ["https://example.jp/"], {}, "種類は"),
        ("web", ["javascript:alert(1)"], {}, "http または https"),
        ("web", ["https://example.jp/"], {"provenance": "rumour"}, "provenance は"),
        ("web", ["https://example.jp/"], {"include": ["(unclosed"]}, "--include の正規表現"),
        ("web", ["https://example.jp/"], {"max_pages": 0}, "--max-pages"),
        ("feed", ["/etc/passwd"], {}, "http または https"),
        ("feed", ["https://example.jp/a.rss", "https://example.jp/b.rss"], {}, "1 つです"),
        ("feed", ["https://example.jp/a.rss"], {"depth": 1}, "web のソースにだけ"),
        ("opendata", ["/no/such/file.csv"], {}, "ファイルが見つかりません"),
        ("web", ["https://example.jp/"], {"dataset": "event"}, "opendata のソースにだけ"),
        ("web", ["https://example.jp/"], {"schedule": "10"}, "300 秒以上"),
    ],
)
def test_a_bad_source_is_refused_before_it_is_stored(store: Store, kind: str, locations: list[str],
                                                     options: dict[str, object], message: str) -> None:
    with pytest.raises(SourceError, match=message):
        add_source(store, kind, locations, **({"provenance": "government"} | options))
    assert list_sources(store) == []


def test_an_opendata_file_source_keeps_its_absolute_path(store: Store, tmp_path: Path) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text("ID,イベント名\n", encoding="utf-8")
    row = add_source(store, "opendata", [str(csv_file)], provenance="government", dataset="event")
    assert (row.location, row.options) == (str(csv_file.resolve()), {"dataset": "event"})


def test_the_scope_follows_its_sites_patterns_and_depth() -> None:
    source = SourceRow(kind="web", location="https://www.city.example.jp/", options={
        "include": [r"/kurashi/|/event/"], "exclude": [r"\?print=1"], "depth": 2, "max_pages": 10})
    scope = WebScope.of(source)
    assert scope.follows("https://city.example.jp/kurashi/gomi.html", 1)  # www. is the same site
    assert scope.follows("http://www.city.example.jp/event/1.html", 2)  # so is the other scheme
    assert not scope.follows("https://www.city.example.jp/event/1.html", 3)  # too deep
    assert not scope.follows("https://www.city.example.jp/about/", 1)  # not included
    assert not scope.follows("https://www.city.example.jp/event/1.html?print=1", 1)  # excluded
    assert not scope.follows("https://www.city.example.jp/event/map.pdf", 1)  # not a page
    assert not scope.follows("https://www.city.example.jp:8443/event/1.html", 1)  # another port, another site
    assert not scope.follows("https://pref.example.jp/event/1.html", 1)
    assert scope.max_pages == 10


def test_list_shows_each_source_with_its_latest_run(store: Store) -> None:
    first = add_source(store, "feed", ["https://example.jp/feed.rss"], provenance="npo")
    second = add_source(store, "web", ["https://example.jp/"], provenance="government")
    with store.session() as session:
        for status in ("interrupted", "finished"):
            session.add(CrawlRunRow(source_id=first.id, status=status, owner="host/1/x", errors=[], fetched=0,
                                    new=0, updated=0, unchanged=0, failed=0, skipped=0))
    overviews = list_sources(store)
    assert [(o.source.id, o.last_run.status if o.last_run else None) for o in overviews] == [
        (first.id, "finished"), (second.id, None)]


def test_sources_add_and_list_from_the_cli(data_dir: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(main, ["sources", "add", "web", "https://www.city.example.jp/", "--name", "市のお知らせ",
                                 "--provenance", "government", "--organization", "サンプル市",
                                 "--exclude", r"/en/", "--depth", "2", "--max-pages", "50", "--schedule", "@daily"])
    assert added.exit_code == 0, added.output
    assert "取得元 1 を追加しました: [web] 市のお知らせ" in added.output
    refused = runner.invoke(main, ["sources", "add", "feed", "ftp://example.jp/feed", "--provenance", "npo"])
    assert refused.exit_code == 2 and "http または https" in refused.output
    listed = runner.invoke(main, ["sources", "list"])
    assert listed.exit_code == 0, listed.output
    assert "1. [web] 市のお知らせ  https://www.city.example.jp/" in listed.output
    assert "組織: サンプル市  定期実行: @daily" in listed.output
    assert "最後の実行: なし" in listed.output
