"""`library serve` without a broker runs the sources' schedules itself: one scheduler per data directory,
due crawls on the job thread, and web requests answered meanwhile (DESIGN §5)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select

import indexer.tasks
from crawlers.sources import add_source
from indexer.cli import main
from indexer.config import Settings
from indexer.store import CrawlRunRow, Store
from indexer.tasks import SCHEDULE_LOCK_FILE, ScheduleLock, run_embedded_beat, start_embedded_beat
from search_app import create_app

PAGE = ('<html><head><meta charset="utf-8"><title>ごみ収集のお知らせ</title></head>'
        "<body><main><p>年末年始の収集日です。</p></main></body></html>").encode()


class _Site(ThreadingHTTPServer):
    """One page on 127.0.0.2 (the address the crawl settings allow in tests); ``hold`` keeps it waiting."""

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.hold.set()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/robots.txt":
                    body, kind = b"", "text/plain"
                else:
                    site.hold.wait(30)
                    body, kind = PAGE, "text/html; charset=utf-8"
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.2", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.2:{self.server_address[1]}{path}"


@pytest.fixture()
def site() -> Iterator[_Site]:
    server = _Site()
    yield server
    server.hold.set()
    server.shutdown()
    server.server_close()


@pytest.fixture()
def crawl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBRARY_CRAWL_ALLOW_HOSTS", "127.0.0.2")
    monkeypatch.setenv("LIBRARY_CRAWL_DELAY", "0")


@pytest.fixture()
def make_app(database_url: str, data_dir: Path) -> Iterator[Callable[[], Flask]]:
    apps: list[Flask] = []

    def make() -> Flask:
        settings = Settings.from_env(data_dir=data_dir, database_url=database_url)
        apps.append(create_app({"TESTING": True, "LIBRARY_SETTINGS": settings}))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["library"].close()


def overdue_source(store: Store, url: str) -> int:
    """A web source scheduled every 5 minutes whose last run started an hour ago: due at once."""
    source = add_source(store, "web", [url], provenance="government", schedule="300", depth=0)
    with store.session() as session:
        session.add(CrawlRunRow(source_id=source.id, status="finished", owner="h/1/x", errors=[],
                                started_at=datetime.now(UTC) - timedelta(hours=1), fetched=0, new=0, updated=0,
                                unchanged=0, failed=0, skipped=0))
    return source.id


def runs_of(store: Store, source_id: int) -> list[CrawlRunRow]:
    with store.session(readonly=True) as session:
        return list(session.scalars(select(CrawlRunRow).where(CrawlRunRow.source_id == source_id)
                                    .order_by(CrawlRunRow.id)))


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_the_schedule_lock_is_one_holder_per_data_dir(tmp_path: Path) -> None:
    first, second = ScheduleLock(tmp_path), ScheduleLock(tmp_path)
    assert first.acquire() and first.acquire()  # re-entrant for its holder
    assert not second.acquire()
    assert str(os.getpid()) in (tmp_path / SCHEDULE_LOCK_FILE).read_text()
    elsewhere = ScheduleLock(tmp_path / "elsewhere")
    assert elsewhere.acquire()  # another data dir is another schedule
    elsewhere.release()
    first.release()
    assert second.acquire()
    second.release()


def test_a_process_killed_holding_the_lock_leaves_none_behind(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from indexer.tasks import ScheduleLock; "
         "lock = ScheduleLock(Path(sys.argv[1])); assert lock.acquire(); print('held', flush=True); time.sleep(60)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert held(tmp_path)
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()
    assert not held(tmp_path)  # kill -9: the OS dropped the lock with the process


class _Recorded:
    """A job runner that only records what a scheduler submits."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, tuple[int, ...]]] = []

    def submit(self, task_name: str, *ids: int) -> None:
        self.submitted.append((task_name, ids))


def held(data_dir: Path) -> bool:
    probe = ScheduleLock(data_dir)
    free = probe.acquire()
    probe.release()
    return not free


def test_serve_runs_due_crawls_in_the_background_with_one_scheduler(
        make_app, site: _Site, crawl_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexer.tasks, "LOCK_RETRY", 0.1)
    monkeypatch.setattr(indexer.tasks, "SCHEDULE_REFRESH", 0.0)  # re-read the sources on every tick
    first, second = make_app(), make_app()  # `library serve` started twice on one data directory
    recorded = second.extensions["jobs"] = _Recorded()
    store = first.extensions["library"].store
    source_id = overdue_source(store, site.url())
    site.hold.clear()  # the crawl waits on the site until the request check below is done
    stop_first, stop_second = threading.Event(), threading.Event()
    beat_first = start_embedded_beat(first, stop_first)
    assert wait_for(lambda: held(store_dir(first)), 10)
    beat_second = start_embedded_beat(second, stop_second)
    try:
        assert wait_for(lambda: len(runs_of(store, source_id)) == 2, 20)  # the due crawl started...
        began = time.monotonic()
        assert first.test_client().get("/healthz").status_code == 200  # ...and requests are answered meanwhile
        assert time.monotonic() - began < 10  # a blocked request would wait for the held crawl: forever
        site.hold.set()
        assert wait_for(lambda: runs_of(store, source_id)[-1].status == "finished", 30)
        last = runs_of(store, source_id)[-1]
        assert (last.new, last.failed) == (1, 0)
        assert recorded.submitted == []  # the second scheduler never ticked while the first held the lock
        # The holder stops; the other takes the schedule over and runs what becomes due.
        stop_first.set()
        beat_first.join(10)
        newly_due = overdue_source(store, site.url("/other"))
        assert wait_for(lambda: ("library.crawl_source", (newly_due,)) in recorded.submitted, 10)
        assert ("library.crawl_source", (source_id,)) not in recorded.submitted  # ran 0 s ago, due in 5 min
    finally:
        site.hold.set()
        stop_first.set()
        stop_second.set()
        beat_first.join(10)
        beat_second.join(10)
    assert not beat_first.is_alive() and not beat_second.is_alive()
    assert not held(store_dir(first))


def store_dir(app: Flask) -> Path:
    return app.extensions["library"].settings.data_dir


def test_the_scheduler_survives_an_unexpected_error(make_app, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    calls: list[int] = []
    stop = threading.Event()

    def failing_then_stopping(celery_app: object, event: threading.Event) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bad tick")
        stop.set()

    monkeypatch.setattr(indexer.tasks, "run_beat_in_process", failing_then_stopping)
    monkeypatch.setattr(indexer.tasks, "BEAT_RESTART_DELAY", 0.0)
    run_embedded_beat(app.extensions["celery"], stop)
    assert len(calls) == 2
    assert not held(store_dir(app))  # released when it stopped


def test_beat_without_broker_says_when_serve_already_runs_the_schedule(data_dir: Path) -> None:
    lock = ScheduleLock(data_dir)
    assert lock.acquire()
    env = {**os.environ, "LIBRARY_DATA_DIR": str(data_dir)}
    beat = subprocess.Popen([sys.executable, "-m", "indexer.cli", "beat"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert beat.stdout.readline().startswith("ブローカーなし")
        assert "別のプロセス" in beat.stdout.readline()
    finally:
        beat.terminate()
        beat.wait(30)
        beat.stdout.close()
        lock.release()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_library_serve_runs_a_due_crawl_and_a_second_serve_waits(data_dir: Path, site: _Site) -> None:
    settings = Settings.from_env(data_dir=data_dir)
    app = create_app({"TESTING": True, "LIBRARY_SETTINGS": settings})  # creates the database
    store = app.extensions["library"].store
    source_id = overdue_source(store, site.url())
    env = {**os.environ, "LIBRARY_DATA_DIR": str(data_dir), "LIBRARY_CRAWL_ALLOW_HOSTS": "127.0.0.2",
           "LIBRARY_CRAWL_DELAY": "0"}
    env.pop("LIBRARY_BROKER_URL", None)
    servers = []
    try:
        for _ in range(2):
            port = _free_port()
            servers.append(subprocess.Popen([sys.executable, "-m", "indexer.cli", "serve", "--port", str(port)],
                                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            assert wait_for(lambda port=port: _answers(port), 60)
        assert wait_for(lambda: len(runs_of(store, source_id)) == 2
                        and runs_of(store, source_id)[-1].status == "finished", 60)
        assert runs_of(store, source_id)[-1].new == 1
        assert held(data_dir)
        holder = int((data_dir / SCHEDULE_LOCK_FILE).read_text().split("/")[1])
        assert holder == servers[0].pid  # the first serve runs the schedule; the second waits
        servers[0].kill()  # kill -9: the lock goes with the process, and the second serve takes over
        servers[0].wait(30)
        assert wait_for(lambda: (data_dir / SCHEDULE_LOCK_FILE).read_text().endswith(f"/{servers[1].pid}\n"), 60)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(30)
        app.extensions["library"].close()


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_worker_without_broker_points_at_serve(data_dir: Path) -> None:
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 1 and "library serve" in result.output
