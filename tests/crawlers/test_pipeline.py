"""Crawl pipelines over a small local site, on SQLite and PostgreSQL: counts, revisions, errors, resume.

The site is served by the loopback harness (127.0.0.2, allowed by the test policy); politeness waits go to
the fake clock, so they cost nothing here.
"""

from __future__ import annotations

import difflib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

import crawlers.pipeline
from crawlers.pipeline import MAX_UNIT_ATTEMPTS, CrawlSummary, SourceBusy, crawl
from crawlers.sources import add_source
from indexer.cli import main
from indexer.config import Settings
from indexer.library import Library
from indexer.store import CrawlFrontierRow, CrawlRunRow, FetchStateRow, RecordRow, RevisionRow

HTML = {"Content-Type": "text/html; charset=utf-8"}


def page(title: str, text: str, links: tuple[str, ...] = ()) -> bytes:
    """A page with the chrome a municipal site has: navigation, footer, a script."""
    items = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (
        f'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{title}</title></head><body>'
        f'<nav><a href="/">トップページ</a></nav><main><h1>{title}</h1><p>{text}</p><ul>{items}</ul></main>'
        f"<footer>サンプル市役所 電話 0000-00-0000</footer><script>alert('x')</script></body></html>"
    ).encode()


class Site:
    """A small municipal-like site; ``changing`` is what /changing says, for a second run."""

    def __init__(self, server) -> None:
        self.server = server
        self.changing = "受付は午前9時から午後5時までです。"
        top = page("サンプル市トップ", "市からのお知らせです。", (
            "/a", "/b", "/changing", "/broken", "/private/secret", "/deep/1", "/sjis", "/report.pdf",
            "http://elsewhere.example/", "/a#section"))
        self._static("/", top)
        self._static("/index.html", top)  # the same page under a second URL
        self._static("/a", page("粗大ごみの出し方", "粗大ごみは予約制です。", ("/", "/index.html")))
        self._static("/private/secret", page("非公開", "robots.txt で除外されたページ"))
        self._static("/deep/1", page("深さ1", "一段目のページです。", ("/deep/2",)))
        self._static("/deep/2", page("深さ2", "二段目のページです。", ("/deep/3",)))
        self._static("/deep/3", page("深さ3", "三段目のページです。", ("/deep/4",)))
        self._static("/deep/4", page("深さ4", "深すぎて辿らないページ"))
        sjis = '<html><head><meta charset="Shift_JIS"><title>①髙島屋～のお知らせ</title></head><body>' \
               "<main><p>①番窓口～髙橋</p></main></body></html>"
        server.route("/sjis")(lambda r: r.reply(200, sjis.encode("cp932"), {"Content-Type": "text/html"}))
        server.route("/robots.txt")(lambda r: r.reply(200, b"User-agent: *\nDisallow: /private/\n",
                                                      {"Content-Type": "text/plain"}))
        server.route("/broken")(lambda r: r.reply(500, b"Internal Server Error", HTML))
        server.route("/changing")(lambda r: r.reply(200, page("窓口の受付時間", self.changing), HTML))
        server.route("/b")(self._with_etag)

    def _static(self, path: str, body: bytes) -> None:
        self.server.route(path)(lambda r: r.reply(200, body, HTML))

    @staticmethod
    def _with_etag(request) -> None:
        if request.headers.get("If-None-Match") == '"b-1"':
            request.reply(304, headers={"ETag": '"b-1"'})
        else:
            request.reply(200, page("ごみカレンダー", "収集日の一覧です。"), HTML | {"ETag": '"b-1"'})

    def url(self, path: str = "/") -> str:
        return self.server.url(path)


@pytest.fixture()
def site(make_server) -> Site:
    return Site(make_server())


@pytest.fixture()
def library(database_url: str, data_dir: Path) -> Iterator[Library]:
    lib = Library.open(Settings.from_env(data_dir=data_dir, database_url=database_url))
    yield lib
    lib.close()


def records_of(library: Library, source_id: int) -> dict[str, RecordRow]:
    with library.store.session(readonly=True) as session:
        rows = session.scalars(select(RecordRow).where(RecordRow.source == f"source:{source_id}")).all()
    return {row.data["url"]: row for row in rows}


def counts(summary: CrawlSummary) -> tuple[int, ...]:
    c = summary.counts
    return c.fetched, c.new, c.updated, c.unchanged, c.failed, c.skipped


def assert_index_matches_store(library: Library) -> None:
    with library.store.session(readonly=True) as session:
        expected = dict(session.execute(select(RecordRow.id, RecordRow.revision)
                                        .where(RecordRow.status == "published")).all())
    assert library.engine.versions() == expected


def test_a_web_crawl_then_a_second_run(library: Library, site: Site, make_fetcher) -> None:
    source = add_source(library.store, "web", [site.url()], provenance="government", organization="サンプル市")
    first = crawl(library, source.id, fetcher=make_fetcher())
    # fetched: / a b changing deep/1-3 sjis index.html; /broken failed; /private/ skipped by robots.txt;
    # /index.html is / again; /deep/4 is too deep, the PDF and the other site are never queued.
    assert counts(first) == (9, 8, 0, 1, 1, 1)
    assert first.status == "finished"
    assert [(e["url"], e["rule"]) for e in first.errors] == [(site.url("/broken"), "http-status")]
    pages = records_of(library, source.id)
    assert sorted(pages) == sorted(site.url(path) for path in
                                   ("/", "/a", "/b", "/changing", "/deep/1", "/deep/2", "/deep/3", "/sjis"))
    top = pages[site.url("/")].data
    assert (top["kind"], top["provenance"], top["organization"]) == ("page", "government", "サンプル市")
    assert top["external_id"] == site.url("/") and top["source"] == f"source:{source.id}"
    for record in pages.values():  # text only: no markup, no script, no page chrome
        assert "<" not in record.data["body"] and "alert" not in record.data["body"]
        assert "サンプル市役所" not in record.data["body"]
    assert pages[site.url("/sjis")].data["body"] == "①番窓口～髙橋"
    assert site.server.hits["/private/secret"] == 0 and site.server.hits["/deep/4"] == 0

    site.changing = "受付は午前8時30分から午後5時15分までです。"
    second = crawl(library, source.id, fetcher=make_fetcher())
    assert counts(second) == (9, 0, 1, 8, 1, 1)
    assert site.server.seen_headers["/b"][-1]["if-none-match"] == '"b-1"'  # a conditional GET: 304
    with library.store.session(readonly=True) as session:
        history = session.execute(select(RevisionRow.record_id, RevisionRow.revision, RevisionRow.data)
                                  .order_by(RevisionRow.revision)).all()
        runs = session.scalars(select(CrawlRunRow).order_by(CrawlRunRow.id)).all()
        leftover = session.scalar(select(func.count()).select_from(CrawlFrontierRow))
    changed = pages[site.url("/changing")].id
    assert [(r.record_id, r.revision) for r in history if r.revision > 1] == [(changed, 2)]  # nothing else
    before, after = (r.data["body"].splitlines() for r in history if r.record_id == changed)
    diff = [line for line in difflib.unified_diff(before, after, lineterm="") if line[:1] in "+-"]
    assert diff[2:] == ["-受付は午前9時から午後5時までです。", "+受付は午前8時30分から午後5時15分までです。"]
    assert [(run.status, run.fetched, run.new, run.updated) for run in runs] == [
        ("finished", 9, 8, 0), ("finished", 9, 0, 1)]
    assert leftover == 0  # a finished run keeps no frontier
    assert_index_matches_store(library)


def test_scope_patterns_and_page_limit(library: Library, site: Site, make_fetcher) -> None:
    source = add_source(library.store, "web", [site.url()], provenance="government",
                        exclude=[r"/deep/"], max_pages=4)
    summary = crawl(library, source.id, fetcher=make_fetcher())
    assert sorted(records_of(library, source.id)) == [site.url(path) for path in ("/", "/a", "/b", "/changing")]
    assert summary.counts.failed == 0 and site.server.hits["/deep/1"] == 0
    assert site.server.hits["/broken"] == 0  # the fifth URL: over the limit


def encodings_of(library: Library) -> dict[str, tuple[str | None, str | None]]:
    with library.store.session(readonly=True) as session:
        rows = session.execute(select(FetchStateRow.url, FetchStateRow.encoding, FetchStateRow.encoding_source))
        return {url: (encoding, source) for url, encoding, source in rows}


def test_conditional_get_state_is_kept_per_source(library: Library, site: Site, make_fetcher) -> None:
    first = add_source(library.store, "web", [site.url("/b")], provenance="government", depth=0)
    second = add_source(library.store, "web", [site.url("/b")], provenance="npo", depth=0)
    crawl(library, first.id, fetcher=make_fetcher())
    summary = crawl(library, second.id, fetcher=make_fetcher())  # no 304 from the other source's ETag
    assert (summary.counts.new, len(records_of(library, second.id))) == (1, 1)
    with library.store.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(FetchStateRow)) == 2


def test_the_same_page_in_two_encodings_is_one_record(library: Library, make_server, make_fetcher) -> None:
    server = make_server()
    text = "<title>窓口の受付時間</title></head><body><main><p>受付は９時〜１７時です。高橋窓口</p></main></body></html>"
    # cp932 gives back ～ (U+FF5E) where EUC-JP and UTF-8 give 〜 (U+301C): still the same page.
    pages = {"/utf8": (f'<html><head><meta charset="utf-8">{text}'.encode(), "text/html; charset=utf-8"),
             "/sjis": (f'<html><head><meta charset="Shift_JIS">{text}'.encode("cp932"), "text/html"),
             "/euc": (f"<html><head>{text}".encode("euc_jp"), "text/html")}  # undeclared EUC-JP
    for path, (body, content_type) in pages.items():
        server.route(path)(lambda r, body=body, content_type=content_type: r.reply(200, body,
                                                                                 {"Content-Type": content_type}))
    source = add_source(library.store, "web", [server.url(path) for path in pages], provenance="government",
                        depth=0)
    assert counts(crawl(library, source.id, fetcher=make_fetcher())) == (3, 1, 0, 2, 0, 0)
    [record] = records_of(library, source.id).values()
    assert (record.data["url"], record.title) == (server.url("/utf8"), "窓口の受付時間")
    assert record.data["body"] == "受付は９時〜１７時です。高橋窓口"
    with library.store.session(readonly=True) as session:  # each URL knows its record, for the next run
        assert set(session.scalars(select(FetchStateRow.record_id))) == {record.id}
    decoded = {server.url("/utf8"): ("utf-8", "header"), server.url("/sjis"): ("cp932", "meta"),
               server.url("/euc"): ("euc_jp", "detected")}  # fmt: skip
    assert encodings_of(library) == decoded  # how each was decoded, and what chose it (T15)
    assert counts(crawl(library, source.id, fetcher=make_fetcher())) == (3, 0, 0, 3, 0, 0)
    assert encodings_of(library) == decoded


def test_a_retry_after_beyond_the_fetch_budget_is_an_error_on_the_run(library: Library, make_server,
                                                                       make_fetcher) -> None:
    server = make_server()
    server.route("/busy")(lambda r: r.reply(429, b"", {"Retry-After": "3"}))
    server.route("/fine")(lambda r: r.reply(200, page("休館日", "月曜日は休館です。"), HTML))
    source = add_source(library.store, "web", [server.url("/busy"), server.url("/fine")], provenance="government",
                        depth=0)
    summary = crawl(library, source.id, fetcher=make_fetcher(total_timeout=1.0))
    assert counts(summary) == (1, 1, 0, 0, 1, 0) and summary.status == "finished"  # the crawl went on
    [error] = summary.errors
    assert (error["url"], error["rule"]) == (server.url("/busy"), "total-timeout")
    assert "3.0 秒後の再試行" in error["message"] and server.hits["/busy"] == 1
    with library.store.session(readonly=True) as session:  # recorded on the source's run
        assert session.scalars(select(CrawlRunRow.errors)).one() == summary.errors


def test_a_feed_source(library: Library, make_server, make_fetcher) -> None:
    server = make_server()
    items = [("n-1", "/news/1", "図書館の臨時休館"), ("n-2", "/news/2", "防災訓練のお知らせ"), ("n-3", None, "リンクなし")]
    rss = "".join(
        f'<item><guid isPermaLink="false">{guid}</guid><title>{title}</title>'
        + (f"<link>{server.url(link)}</link>" if link else "")
        + f"<description>&lt;p&gt;{title}の詳細&lt;/p&gt;</description></item>"
        for guid, link, title in items
    )
    body = (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>市の新着</title>'
            f"<link>{server.url('/')}</link>{rss}</channel></rss>").encode()

    @server.route("/feed.rss")
    def feed(request) -> None:
        if request.headers.get("If-Modified-Since") == "Mon, 01 Dec 2025 00:00:00 GMT":
            request.reply(304)
        else:
            request.reply(200, body, {"Content-Type": "application/rss+xml",
                                      "Last-Modified": "Mon, 01 Dec 2025 00:00:00 GMT"})

    source = add_source(library.store, "feed", [server.url("/feed.rss")], provenance="npo")
    first = crawl(library, source.id, fetcher=make_fetcher())
    assert counts(first) == (1, 2, 0, 0, 1, 0)  # the entry without a link is an error
    assert "リンクのない" in first.errors[0]["message"]
    stored = records_of(library, source.id)
    assert {r.external_id for r in stored.values()} == {"n-1", "n-2"}
    assert stored[server.url("/news/1")].data["body"] == "図書館の臨時休館の詳細"  # the HTML became text
    assert encodings_of(library) == {server.url("/feed.rss"): ("utf-8", "xml-declaration")}
    again = crawl(library, source.id, fetcher=make_fetcher())
    assert counts(again) == (1, 0, 0, 1, 0, 0)  # 304: nothing read, nothing written
    assert encodings_of(library) == {server.url("/feed.rss"): ("utf-8", "xml-declaration")}  # kept
    assert_index_matches_store(library)


def test_a_feed_that_is_not_a_feed_fails_the_run(library: Library, make_server, make_fetcher) -> None:
    server = make_server()
    server.route("/feed")(lambda r: r.reply(200, b"<html><body>not a feed</body></html>", HTML))
    source = add_source(library.store, "feed", [server.url("/feed")], provenance="npo")
    summary = crawl(library, source.id, fetcher=make_fetcher())
    assert summary.status == "failed" and summary.errors[0]["rule"] == "parse"


def test_a_live_run_makes_a_second_crawl_a_no_op(library: Library, site: Site, make_fetcher) -> None:
    source = add_source(library.store, "web", [site.url()], provenance="government")
    attempts: list[str] = []

    def meanwhile(*_: object) -> None:
        if not attempts:
            with pytest.raises(SourceBusy) as busy:
                crawl(library, source.id, fetcher=make_fetcher())
            attempts.append(f"busy {busy.value.run_id}")

    summary = crawl(library, source.id, fetcher=make_fetcher(), progress=meanwhile)
    assert attempts == [f"busy {summary.run_id}"] and summary.counts.new == 8


def test_a_run_taken_over_stops_writing(library: Library, site: Site, make_fetcher) -> None:
    """A worker presumed dead (lease expired) that wakes up must not write over its successor."""
    source = add_source(library.store, "web", [site.url()], provenance="government")

    def taken_over(*_: object) -> None:
        with library.store.session() as session:
            session.execute(update(CrawlRunRow).values(status="interrupted"))

    summary = crawl(library, source.id, fetcher=make_fetcher(), progress=taken_over)
    assert summary.status == "interrupted"
    assert len(records_of(library, source.id)) == 1  # the first page; nothing after the takeover


def test_a_failed_run_is_resumed_from_its_frontier(library: Library, site: Site, make_fetcher) -> None:
    source = add_source(library.store, "web", [site.url()], provenance="government")
    done: list[int] = []

    def crash_after_three(*_: object) -> None:
        done.append(1)
        if len(done) == 3:
            raise ConnectionResetError("the database went away")

    with pytest.raises(ConnectionResetError):
        crawl(library, source.id, fetcher=make_fetcher(), progress=crash_after_three)
    resumed = crawl(library, source.id, fetcher=make_fetcher())
    with library.store.session(readonly=True) as session:
        first = session.scalars(select(CrawlRunRow).order_by(CrawlRunRow.id)).first()
    assert (first.status, first.errors[-1]["rule"]) == ("failed", "ConnectionResetError")
    assert resumed.resumed_from_id == first.id
    # Three units were done (/, /a, /b); the resumed run did the rest, once each.
    assert (resumed.counts.fetched + first.fetched, resumed.counts.new + first.new) == (9, 8)
    assert len(records_of(library, source.id)) == 8


def test_a_unit_that_keeps_killing_workers_is_given_up(library: Library, site: Site, make_fetcher) -> None:
    source = add_source(library.store, "web", [site.url()], provenance="government")
    with library.store.session() as session:  # a run whose worker process is gone, at its first unit
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
        run = CrawlRunRow(source_id=source.id, status="running", owner=f"{socket.gethostname()}/{dead.stdout.strip()}/x",
                          errors=[], fetched=0, new=0, updated=0, unchanged=0, failed=0, skipped=0)
        session.add(run)
        session.flush()
        session.add(CrawlFrontierRow(run_id=run.id, url_key="k" * 64, url=site.url("/"), depth=0, state="pending",
                                     attempts=MAX_UNIT_ATTEMPTS - 1))
    summary = crawl(library, source.id, fetcher=make_fetcher())
    assert summary.resumed_from_id == run.id
    assert summary.counts.failed == 1 and "実行が 3 回止まった" in summary.errors[0]["message"]
    assert site.server.hits["/"] == 0 and records_of(library, source.id) == {}


def test_a_page_that_fails_every_run_is_given_up(library: Library, site: Site, make_fetcher,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real_extract = crawlers.pipeline.extract_html

    def buggy(content: bytes, *, url: str, content_type: str | None = None) -> object:
        if url.endswith("/a"):
            raise RecursionError("a parser bug")
        return real_extract(content, url=url, content_type=content_type)

    monkeypatch.setattr(crawlers.pipeline, "extract_html", buggy)
    source = add_source(library.store, "web", [site.url()], provenance="government")
    for _ in range(MAX_UNIT_ATTEMPTS):
        with pytest.raises(RecursionError):
            crawl(library, source.id, fetcher=make_fetcher())
    last = crawl(library, source.id, fetcher=make_fetcher())
    assert last.status == "finished" and "実行が 3 回止まった" in last.errors[0]["message"]
    assert site.server.hits["/a"] == MAX_UNIT_ATTEMPTS
    assert site.url("/a") not in records_of(library, source.id) and site.url("/b") in records_of(library, source.id)


def _kill_when(marker: Path, child: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


@pytest.fixture()
def sqlite_library(data_dir: Path) -> Iterator[Library]:
    lib = Library.open(Settings.from_env(data_dir=data_dir))
    yield lib
    lib.close()


def test_kill_9_mid_crawl_then_the_next_run_resumes(sqlite_library: Library, make_server, make_fetcher,
                                                     data_dir: Path) -> None:
    """T26 without a broker, as `library crawl` on the embedded default (SQLite; PostgreSQL is covered by the
    worker test): a crawling process killed mid-page; the next run continues its frontier and every page is
    a record exactly once."""
    library = sqlite_library
    server = make_server()
    paths = ["/", *(f"/p/{n}" for n in range(11))]  # "/" is also every page's navigation link
    for number, path in enumerate(paths):
        body = page(f"ページ{number}", f"{number}番目のお知らせです。", tuple(paths))

        def slow(request, body: bytes = body) -> None:
            time.sleep(0.1)
            request.reply(200, body, HTML)

        server.route(path)(slow)
    source = add_source(library.store, "web", [server.url(paths[0])], provenance="government")
    marker = data_dir / "four-pages-done"
    env = {**os.environ, "LIBRARY_DATA_DIR": str(data_dir), "LIBRARY_DATABASE_URL": library.settings.database_url,
           "LIBRARY_CRAWL_ALLOW_HOSTS": "127.0.0.2", "LIBRARY_CRAWL_DELAY": "0"}
    script = f"""
        from pathlib import Path
        from crawlers.pipeline import crawl
        from indexer.library import Library
        done = []
        def progress(*_):
            done.append(1)
            if len(done) == 4:
                Path({str(marker)!r}).touch()
        crawl(Library.open(), {source.id}, progress=progress)
        """
    _kill_when(marker, subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env))
    with library.store.session(readonly=True) as session:
        killed = session.scalars(select(CrawlRunRow)).one()
        assert killed.status == "running" and 4 <= killed.fetched < len(paths)

    resumed = crawl(library, source.id, fetcher=make_fetcher())
    assert resumed.resumed_from_id == killed.id and resumed.status == "finished"
    assert resumed.counts.fetched <= len(paths) - killed.fetched  # continued, not restarted
    stored = records_of(library, source.id)
    assert sorted(stored) == sorted(server.url(path) for path in paths)
    with library.store.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(RecordRow)) == len(paths)
        assert session.scalar(select(func.count()).select_from(RevisionRow)) == len(paths)
        assert session.get_one(CrawlRunRow, killed.id).status == "interrupted"
    assert_index_matches_store(library)


def test_crawl_all_from_the_cli_goes_on_after_a_failing_source(site: Site, make_server, data_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """T13: the error is recorded on its source and the other sources are crawled."""
    monkeypatch.setenv("LIBRARY_CRAWL_ALLOW_HOSTS", "127.0.0.2")
    monkeypatch.setenv("LIBRARY_CRAWL_DELAY", "0")
    dead = make_server()
    dead.route("/feed")(lambda r: r.reply(503, b"", {"Retry-After": "3600"}))  # longer than we wait
    runner = CliRunner()
    for args in (["feed", dead.url("/feed"), "--provenance", "npo"],
                 ["web", site.url(), "--provenance", "government", "--depth", "1"]):
        assert runner.invoke(main, ["sources", "add", *args]).exit_code == 0
    faq = data_dir.parent / "faq.json"
    faq.write_text('[{"kind": "faq", "title": "ごみの日は？"}]', encoding="utf-8")
    assert runner.invoke(main, ["import", str(faq), "--provenance", "npo"]).exit_code == 0  # upload source 3
    result = runner.invoke(main, ["crawl", "--all"])
    assert result.exit_code == 1
    assert "取得元 3" not in result.output  # an upload is read when it is uploaded, not by --all
    assert "取得元 1: 取得 0・新規 0・更新 0・変更なし 0・失敗 1" in result.output
    assert "取得元 2: 取得 6・新規 6・更新 0・変更なし 0・失敗 1" in result.output
    listed = runner.invoke(main, ["sources", "list"]).output
    assert "failed" in listed and "finished" in listed
    assert runner.invoke(main, ["crawl"]).exit_code == 2  # SOURCE_ID or --all


EVENTS_CSV = (
    "全国地方公共団体コード,ID,地方公共団体名,イベント名,開始日,終了日,開始時間,終了時間,場所名称,説明\r\n"
    "222127,ev-1,焼津市,みなと朝市,2026/4/5,2026/4/5,7:00,10:00,焼津漁港,\"地元の魚と野菜\r\nが並びます\"\r\n"
    "222127,ev-2,焼津市,,2026/4/6,2026/4/6,9:00,12:00,市民会館,イベント名のない行\r\n"
    "222127,ev-3,焼津市,防災フェア,2026/5/10,2026/5/10,10:00,15:00,市役所,\r\n"
)


def test_an_opendata_csv_by_url_and_by_file(library: Library, make_server, make_fetcher, tmp_path: Path) -> None:
    server = make_server()
    content = EVENTS_CSV.encode("cp932")  # Shift_JIS, as many municipal files still are
    server.route("/events.csv")(lambda r: r.reply(200, content, {"Content-Type": "text/csv"}))
    by_url = add_source(library.store, "opendata", [server.url("/events.csv")], provenance="government",
                        organization="焼津市")
    first = crawl(library, by_url.id, fetcher=make_fetcher())
    assert counts(first) == (1, 2, 0, 0, 1, 0)
    assert first.errors[0]["message"] == "2 件目（4 行目）: イベント名が空です"  # a quoted line break before it
    with library.store.session(readonly=True) as session:
        events = {row.external_id: row.data for row in session.scalars(select(RecordRow))}
    assert set(events) == {"222127:ev-1", "222127:ev-3"}  # the municipality code keeps ids apart
    assert (events["222127:ev-1"]["kind"], events["222127:ev-1"]["title"], events["222127:ev-1"]["organization"]) == (
        "program", "みなと朝市", "焼津市")
    assert counts(crawl(library, by_url.id, fetcher=make_fetcher())) == (1, 0, 0, 2, 1, 0)
    assert encodings_of(library) == {server.url("/events.csv"): ("cp932", "detected")}

    csv_file = tmp_path / "events.csv"
    csv_file.write_bytes(EVENTS_CSV.encode("utf-8-sig"))
    by_file = add_source(library.store, "opendata", [str(csv_file)], provenance="government", dataset="event")
    assert counts(crawl(library, by_file.id, fetcher=make_fetcher())) == (1, 2, 0, 0, 1, 0)
    csv_file.unlink()
    gone = crawl(library, by_file.id, fetcher=make_fetcher())
    assert gone.status == "failed" and gone.errors[0]["url"] == "events.csv"
    assert_index_matches_store(library)


def _corpus_dir() -> Path:
    """../shared/corpus beside the checkout, else the workspace's (a CI clone may live elsewhere), or an override."""
    candidates = [os.environ.get("LIBRARY_TEST_CORPUS_DIR"), Path(__file__).resolve().parents[3] / "shared" / "corpus",
                  "/work/shared/corpus"]
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), Path(str(candidates[1])))


FUKUI = _corpus_dir() / "opendata" / "fukui_convention_events_utf8bom.csv"


@pytest.mark.skipif(not FUKUI.is_file(), reason=f"the open-data corpus file is not at {FUKUI}")
def test_an_event_csv_without_organizer_column_takes_the_source_name(library: Library, make_fetcher) -> None:
    source = add_source(library.store, "opendata", [str(FUKUI)], provenance="government",
                        name="ふくいコンベンション予定")
    summary = crawl(library, source.id, fetcher=make_fetcher())
    assert counts(summary) == (1, 149, 0, 0, 0, 0)  # 12 of them undated: announced as "2026年6月頃" only
    assert summary.status == "finished"
    with_organization = add_source(library.store, "opendata", [str(FUKUI)], provenance="government",
                                   organization="福井県観光連盟")
    crawl(library, with_organization.id, fetcher=make_fetcher())
    with library.store.session(readonly=True) as session:
        organizers = Counter((row.source, row.data["organizer"]) for row in session.scalars(select(RecordRow)))
    assert organizers == {(f"source:{source.id}", "ふくいコンベンション予定"): 149,
                          (f"source:{with_organization.id}", "福井県観光連盟"): 149}


def test_an_upload_source_never_takes_over_another_record(library: Library, make_fetcher, tmp_path: Path) -> None:
    library.ingest({"id": "precious", "kind": "faq", "title": "大切な記録", "provenance": "government"},
                   author="editor", summary="s")
    upload = tmp_path / "faq.jsonl"
    upload.write_text('{"id": "precious", "kind": "faq", "title": "上書き？", "provenance": "citizen"}\n'
                      '{"kind": "faq", "title": "粗大ごみは？", "body": "予約制です", "provenance": "citizen"}\n',
                      encoding="utf-8")
    source = add_source(library.store, "upload", [str(upload)], provenance="npo")
    assert counts(crawl(library, source.id, fetcher=make_fetcher())) == (1, 2, 0, 0, 0, 0)
    assert counts(crawl(library, source.id, fetcher=make_fetcher())) == (1, 0, 0, 2, 0, 0)  # keyed by content
    assert library.get_record("precious").data["title"] == "大切な記録"
    with library.store.session(readonly=True) as session:
        uploaded = session.scalars(select(RecordRow).where(RecordRow.source == "upload")).all()  # one namespace
    assert sorted((row.title, row.data["provenance"]) for row in uploaded) == [("上書き？", "npo"), ("粗大ごみは？", "npo")]
