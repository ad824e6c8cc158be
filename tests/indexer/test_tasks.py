"""Background work without a broker: Celery's configuration, the thin tasks, notice expiry, the beat schedule
and the embedded job runner, which never makes a web request wait for a crawl."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from celery.schedules import crontab, schedule
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

import indexer.tasks
from crawlers.pipeline import SourceNotFound
from crawlers.sources import add_source
from indexer.cli import main
from indexer.config import Settings
from indexer.library import Library
from indexer.search import Query
from indexer.store import CrawlRunRow, RevisionRow, SourceRow
from indexer.store.searchlog import write_search_log
from indexer.tasks import (
    RETRY_BACKOFF_MAX,
    VISIBILITY_TIMEOUT,
    _restore_scan,
    BrokerJobs,
    InProcessJobs,
    InProcessScheduler,
    beat_schedule,
    expire_notices,
    get_jobs,
    run_beat_in_process,
)
from search_app import create_app
from search_app.auth.policy import PUBLIC, access

EVENTS_CSV = ("全国地方公共団体コード,ID,地方公共団体名,イベント名,開始日,場所名称\r\n"
              "222127,ev-1,焼津市,みなと朝市,2026-04-05,焼津漁港\r\n").encode()


@pytest.fixture()
def make_app(database_url: str, data_dir: Path) -> Iterator:
    apps: list[Flask] = []

    def make(**config: object) -> Flask:
        settings = Settings.from_env(data_dir=data_dir, database_url=database_url)
        apps.append(create_app({"TESTING": True, "LIBRARY_SETTINGS": settings, **config}))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["library"].close()


@pytest.fixture()
def app(make_app) -> Flask:
    return make_app()


def library_of(app: Flask) -> Library:
    return app.extensions["library"]


def test_celery_is_configured_for_redelivery_without_loops(app: Flask) -> None:
    conf = app.extensions["celery"].conf
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost, conf.worker_prefetch_multiplier) == (True, True, 1)
    assert conf.broker_transport_options["visibility_timeout"] == VISIBILITY_TIMEOUT > RETRY_BACKOFF_MAX
    assert (conf.task_serializer, conf.accept_content) == ("json", ["json"])
    for name in ("library.crawl_source", "library.drain_outbox", "library.reindex", "library.expire_notices"):
        task = app.extensions["celery"].tasks[name]
        assert task.max_retries == 3 and task.retry_backoff_max == RETRY_BACKOFF_MAX


@pytest.mark.parametrize(("visibility_timeout", "longest_scan"), [(3600, 100), (60, 15), (8, 2), (1, 1)])
def test_lost_deliveries_are_looked_for_well_within_the_visibility_timeout(visibility_timeout: int,
                                                                          longest_scan: int) -> None:
    """A delivery lost with its connection comes back at most a quarter of the timeout after it is due."""
    options = _restore_scan(visibility_timeout)
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= longest_scan


def test_the_job_runner_follows_the_broker_setting(make_app) -> None:
    assert isinstance(get_jobs(make_app()), InProcessJobs)
    assert isinstance(get_jobs(make_app(CELERY={"broker_url": "redis://127.0.0.1:6379/15"})), BrokerJobs)


def test_jobs_take_ids_only(app: Flask) -> None:
    jobs = get_jobs(app)
    with pytest.raises(TypeError, match="ids"):
        jobs.submit("library.crawl_source", "taro@example.jp")
    with pytest.raises(KeyError):
        jobs.submit("library.no_such_task")


def test_tasks_run_in_the_app_context(app: Flask, tmp_path: Path) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_bytes(EVENTS_CSV)
    source = add_source(library_of(app).store, "opendata", [str(csv_file)], provenance="government")
    jobs = get_jobs(app)
    summary = jobs.submit("library.crawl_source", source.id).result(timeout=60)
    assert summary | {"run_id": 0} == {"source_id": source.id, "run_id": 0, "status": "finished", "resumed_from_id": None,
                                       "fetched": 1, "new": 1, "updated": 0, "unchanged": 0, "failed": 0,
                                       "skipped": 0, "errors": 0}
    assert library_of(app).search(Query(text="朝市")).total == 1
    assert jobs.submit("library.drain_outbox").result(timeout=60)["indexed"] == 0  # nothing left to index
    assert jobs.submit("library.reindex").result(timeout=60) == 1
    with pytest.raises(SourceNotFound):
        jobs.submit("library.crawl_source", 999).result(timeout=60)


def notice(record_id: str, valid_until: str | None) -> dict[str, object]:
    return {"id": record_id, "kind": "notice", "title": f"回収のお知らせ {record_id}", "maker": "サンプル電機",
            "product": "ポケットチャージ", "hazard": "発熱", "action": "使用を中止してください", "provenance": "maker",
            "valid_until": valid_until}


def test_expired_notices_get_a_system_revision_and_leave_the_index(app: Flask) -> None:
    library = library_of(app)
    now = datetime.now(UTC)
    for record_id, valid_until in (("past", now - timedelta(minutes=1)), ("future", now + timedelta(days=1)),
                                   ("forever", None)):
        library.ingest(notice(record_id, valid_until and valid_until.isoformat()), author="maker", summary="s")
    assert get_jobs(app).submit("library.expire_notices").result(timeout=60) == 1
    assert expire_notices(library) == 0  # a second run changes nothing
    assert library.get_record("past").status == "expired"
    with library.store.session(readonly=True) as session:
        last = session.scalars(select(RevisionRow).where(RevisionRow.record_id == "past")
                               .order_by(RevisionRow.revision.desc())).first()
    assert (last.revision, last.author, last.data["status"]) == (2, "system", "expired")
    assert {hit.id for hit in library.search(Query(text="回収")).hits} == {"future", "forever"}
    assert expire_notices(library, now + timedelta(days=2)) == 1



def test_the_search_log_purge_is_a_task(app: Flask) -> None:
    store = library_of(app).store
    now = datetime.now(UTC)
    write_search_log(store, [{"at": now - timedelta(days=days), "query": "q", "filters": {}, "total": 0,
                              "took_ms": 1.0, "relaxed": False} for days in (400, 91, 1)])
    assert get_jobs(app).submit("library.purge_search_log").result(timeout=60) == 2
    assert get_jobs(app).submit("library.purge_search_log").result(timeout=60) == 0

class _HeldSite(ThreadingHTTPServer):
    """One page that answers only when the test releases it; robots.txt is absent."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.requested = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/robots.txt":
                    self.send_error(404)
                    return
                site.requested.set()
                site.release.wait(30)
                body = "<html><head><title>休館日のお知らせ</title></head><body><p>月曜は休館です。</p></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body.encode())))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.2", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.2:{self.server_address[1]}{path}"


def test_a_crawl_started_from_a_request_never_blocks_it(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBRARY_CRAWL_ALLOW_HOSTS", "127.0.0.2")
    monkeypatch.setenv("LIBRARY_CRAWL_DELAY", "0")
    site = _HeldSite()
    source = add_source(library_of(app).store, "web", [site.url("/")], provenance="government")
    started: list[object] = []

    # What the admin page's "crawl now" button does (tests/search_app/test_admin_ingest.py covers the page
    # itself, with its login and CSRF token); a GET here, so the test needs neither.
    @app.get("/test-crawl/<int:source_id>")
    @access(PUBLIC)
    def crawl_now(source_id: int) -> tuple[str, int]:
        started.append(get_jobs(app).submit("library.crawl_source", source_id))
        return "", 202

    client = app.test_client()
    try:
        began = time.monotonic()
        assert client.get(f"/test-crawl/{source.id}").status_code == 202
        assert site.requested.wait(30)  # the crawl is now waiting on the site...
        assert client.get("/healthz").status_code == 200  # ...and requests are answered meanwhile
        assert time.monotonic() - began < 5
        assert not started[0].done()
        site.release.set()
        assert started[0].result(timeout=60)["new"] == 1
    finally:
        site.release.set()
        site.shutdown()
        site.server_close()


CRAWL_DELAY = 0.3  # seconds between two requests to one host, for the politeness tests


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_crawls_of_one_host_in_one_process_take_turns(app: Flask, make_timed_site,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The tasks of one process share its fetcher: one request at a time per host with the delay, and one
    robots.txt parser, however many crawls of the host run at once (a threads pool, the embedded runner)."""
    monkeypatch.setenv("LIBRARY_CRAWL_ALLOW_HOSTS", "127.0.0.2")
    monkeypatch.setenv("LIBRARY_CRAWL_DELAY", str(CRAWL_DELAY))
    site = make_timed_site({"a": 4, "b": 4})
    store = library_of(app).store
    sources = [add_source(store, "web", [site.url(f"/{name}/0")], provenance="government") for name in "ab"]
    task = app.extensions["celery"].tasks["library.crawl_source"]
    results: dict[int, dict[str, object]] = {}

    def crawl(source_id: int) -> None:
        results[source_id] = task.apply(args=(source_id,), throw=True).get()

    threads = [threading.Thread(target=crawl, args=(source.id,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [(results[source.id]["new"], results[source.id]["failed"]) for source in sources] == [(4, 0), (4, 0)]
    assert site.interleaved()  # the two crawls really ran at the same time...
    assert min(site.gaps()) >= CRAWL_DELAY - 0.05  # ...yet never overlapped at the server, each after the delay
    assert site.hits("/robots.txt") == 1  # one cached robots.txt parser for the host
    assert app.extensions["crawl_fetcher"].get() is app.extensions["crawl_fetcher"].get()


def test_the_beat_schedule_comes_from_the_sources(app: Flask) -> None:
    store = library_of(app).store
    daily = add_source(store, "feed", ["https://example.jp/a.rss"], provenance="npo", schedule="0 6 * * *")
    hourly = add_source(store, "feed", ["https://example.jp/b.rss"], provenance="npo", schedule="3600")
    off = add_source(store, "feed", ["https://example.jp/c.rss"], provenance="npo", schedule="3600")
    add_source(store, "feed", ["https://example.jp/d.rss"], provenance="npo")  # no schedule: manual only
    with store.session() as session:
        session.get_one(SourceRow, off.id).enabled = False
        sources = list(session.scalars(select(SourceRow)))
    last = datetime(2026, 4, 1, tzinfo=UTC)
    entries = beat_schedule(sources, {hourly.id: last})
    assert set(entries) == {"drain-outbox", "expire-notices", "purge-search-log", "purge-sessions",
                            f"crawl-source-{daily.id}",
                            f"crawl-source-{hourly.id}"}
    assert entries[f"crawl-source-{daily.id}"] | {"last_run_at": None} == {
        "task": "library.crawl_source", "schedule": crontab(minute="0", hour="6"), "args": (daily.id,),
        "last_run_at": None}
    assert entries[f"crawl-source-{hourly.id}"]["schedule"] == schedule(timedelta(hours=1))
    assert entries[f"crawl-source-{hourly.id}"]["last_run_at"] == last


class _Recorded:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, tuple[int, ...]]] = []
        self.event = threading.Event()

    def submit(self, task_name: str, *ids: int) -> None:
        self.submitted.append((task_name, ids))
        self.event.set()


def test_beat_runs_due_crawls_and_sees_new_sources_without_a_restart(app: Flask,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexer.tasks, "SCHEDULE_REFRESH", 0.0)  # re-read the sources on every tick
    recorded = _Recorded()
    app.extensions["jobs"] = recorded
    store = library_of(app).store
    overdue = add_source(store, "feed", ["https://example.jp/a.rss"], provenance="npo", schedule="300")
    with store.session() as session:  # its last run started an hour ago
        session.add(CrawlRunRow(source_id=overdue.id, status="finished", owner="h/1/x", errors=[],
                                started_at=datetime.now(UTC) - timedelta(hours=1), fetched=0, new=0, updated=0,
                                unchanged=0, failed=0, skipped=0))
    scheduler = InProcessScheduler(app.extensions["celery"])
    scheduler.tick()
    assert recorded.submitted == [("library.crawl_source", (overdue.id,))]
    assert scheduler.tick() > 0  # not due again until its interval has passed
    added = add_source(store, "feed", ["https://example.jp/b.rss"], provenance="npo", schedule="300")
    scheduler.tick()
    assert f"crawl-source-{added.id}" in scheduler.schedule  # picked up; first due one interval from now

    stop = threading.Event()  # the embedded `library beat` loop runs the same scheduler
    recorded.submitted.clear()
    recorded.event.clear()
    with store.session() as session:
        session.add(CrawlRunRow(source_id=added.id, status="finished", owner="h/1/x", errors=[],
                                started_at=datetime.now(UTC) - timedelta(hours=1), fetched=0, new=0, updated=0,
                                unchanged=0, failed=0, skipped=0))
    loop = threading.Thread(target=run_beat_in_process, args=(app.extensions["celery"], stop))
    loop.start()
    try:
        assert recorded.event.wait(10)
    finally:
        stop.set()
        loop.join(10)
    assert ("library.crawl_source", (added.id,)) in recorded.submitted


def test_worker_needs_a_broker(data_dir: Path) -> None:
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 1 and "LIBRARY_BROKER_URL" in result.output
