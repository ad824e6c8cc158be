"""A real Celery worker over Redis (RELIABILITY T26): a crawl end to end, then kill -9 of the worker in the
middle of a crawl, and a second worker's run: every page is indexed exactly once.

Needs Redis at LIBRARY_TEST_REDIS_URL (default redis://127.0.0.1:6379). Each test claims an empty database
number of its own and flushes it afterwards. Skipped when Redis is unreachable, failed instead under CI.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from celery import Celery
from sqlalchemy import func, select

from crawlers.sources import add_source
from indexer.config import Settings
from indexer.library import Library
from indexer.store import CrawlRunRow, RecordRow, RevisionRow
from indexer.tasks import celery_config

REDIS_URL = os.environ.get("LIBRARY_TEST_REDIS_URL", "redis://127.0.0.1:6379")
CLAIM_KEY = "social-library-test:claimed"
PAGE_DELAY = 0.3  # seconds per page on the slow site: the kill lands while a crawl is under way


@pytest.fixture()
def broker_url() -> Iterator[str]:
    """redis://.../N for a database N that was empty and is now ours; flushed afterwards."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        reason = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI promises Redis: a silent skip would hide the worker tests
        pytest.skip(reason)
    token = secrets.token_hex(8)
    for number in secrets.SystemRandom().sample(range(1, 16), 15):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.set(CLAIM_KEY, token, nx=True, ex=3600):
            if client.dbsize() == 1:  # nothing but our claim: nobody else uses this database
                break
            client.delete(CLAIM_KEY)
    else:
        pytest.fail("no empty Redis database number (1-15) to run the worker tests in")
    try:
        yield f"{REDIS_URL}/{number}"
    finally:
        client.flushdb()


class _Site(ThreadingHTTPServer):
    """Pages /0 ... /n-1 on 127.0.0.2, each linking to all the others, each answered after ``delay`` s."""

    daemon_threads = True

    def __init__(self, pages: int, delay: float) -> None:
        site = self
        self.paths = [f"/{number}" for number in range(pages)]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path not in site.paths:
                    self.send_error(404)
                    return
                time.sleep(delay)
                links = "".join(f'<a href="{path}">{path}</a>' for path in site.paths)
                body = (f"<html><head><title>お知らせ{self.path}</title></head><body><main>"
                        f"<p>{self.path} 番のお知らせです。</p>{links}</main></body></html>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.2", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.2:{self.server_address[1]}{path}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture()
def make_site() -> Iterator[Callable[..., _Site]]:
    sites: list[_Site] = []

    def make(pages: int, delay: float = 0.0) -> _Site:
        sites.append(_Site(pages, delay))
        return sites[-1]

    yield make
    for site in sites:
        site.close()


class Worker:
    """`library worker` in its own session, so kill -9 takes the pool's child with it (as a container stop)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "indexer.cli", "worker", "--concurrency=1", "--without-gossip",
                 "--without-mingle", "--hostname", f"test-{secrets.token_hex(4)}@%h"],
                env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill_9()


@pytest.fixture()
def library(database_url: str, data_dir: Path) -> Iterator[Library]:
    lib = Library.open(Settings.from_env(data_dir=data_dir, database_url=database_url))
    yield lib
    lib.close()


def wait_for(condition: Callable[[], object], what: str, log: Path, timeout: float = 90) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text(errors='replace')[-4000:]}")


def latest_run(library: Library, source_id: int) -> CrawlRunRow | None:
    with library.store.session(readonly=True) as session:
        return session.scalars(select(CrawlRunRow).where(CrawlRunRow.source_id == source_id)
                               .order_by(CrawlRunRow.id.desc())).first()


def ended(library: Library, source_id: int, after: int = 0) -> CrawlRunRow | None:
    run = latest_run(library, source_id)
    return run if run is not None and run.id > after and run.status != "running" else None


def assert_every_page_indexed_once(library: Library, site: _Site, source_id: int) -> None:
    with library.store.session(readonly=True) as session:
        urls = session.scalars(select(RecordRow.external_id).where(RecordRow.source == f"source:{source_id}")).all()
        revisions = session.scalar(select(func.count()).select_from(RevisionRow).join(
            RecordRow, RecordRow.id == RevisionRow.record_id).where(RecordRow.source == f"source:{source_id}"))
        expected = dict(session.execute(select(RecordRow.id, RecordRow.revision)).all())
    assert sorted(urls) == sorted(site.url(path) for path in site.paths)  # each page, once
    assert revisions == len(site.paths)
    assert library.engine.versions() == expected  # index == store


def test_a_worker_crawls_and_a_killed_crawl_is_finished_by_the_next_worker(
        library: Library, broker_url: str, make_site, data_dir: Path) -> None:
    quick, slow = make_site(4), make_site(10, PAGE_DELAY)
    first = add_source(library.store, "web", [quick.url("/0")], provenance="government")
    second = add_source(library.store, "web", [slow.url("/0")], provenance="government")
    env = {**os.environ, "LIBRARY_BROKER_URL": broker_url, "LIBRARY_DATA_DIR": str(data_dir),
           "LIBRARY_DATABASE_URL": library.settings.database_url, "LIBRARY_CRAWL_ALLOW_HOSTS": "127.0.0.2",
           "LIBRARY_CRAWL_DELAY": "0"}
    client = Celery("test-client")
    client.conf.update(celery_config(broker_url))
    log = data_dir / "worker.log"

    worker = Worker(env, log)
    try:
        client.send_task("library.crawl_source", args=[first.id])
        run = wait_for(lambda: ended(library, first.id), "the first crawl", log)
        assert (run.status, run.fetched, run.new, run.failed) == ("finished", 4, 4, 0)
        assert_every_page_indexed_once(library, quick, first.id)

        client.send_task("library.crawl_source", args=[second.id])
        wait_for(lambda: (run := latest_run(library, second.id)) and run.fetched >= 3, "three pages", log)
        worker.kill_9()
    finally:
        worker.stop()
    killed = latest_run(library, second.id)
    assert killed.status == "running" and killed.fetched < len(slow.paths)  # killed mid-crawl

    worker = Worker(env, log)
    try:
        client.send_task("library.crawl_source", args=[second.id])
        resumed = wait_for(lambda: ended(library, second.id, after=killed.id), "the resumed crawl", log)
    finally:
        worker.stop()
    assert (resumed.status, resumed.resumed_from_id, resumed.failed) == ("finished", killed.id, 0)
    assert resumed.fetched <= len(slow.paths) - killed.fetched  # continued from the checkpoint
    with library.store.session(readonly=True) as session:
        assert session.get_one(CrawlRunRow, killed.id).status == "interrupted"
    assert_every_page_indexed_once(library, slow, second.id)
