"""A real Celery worker over Redis (RELIABILITY T26): a crawl end to end, then kill -9 of the worker in the
middle of a crawl, and a second worker's run: every page is indexed exactly once. And politeness across
processes: the worker's pool processes take turns at a host through the Redis host lease.

Needs Redis at LIBRARY_TEST_REDIS_URL (default redis://127.0.0.1:6379). Each test claims an empty database
number of its own and flushes it afterwards. Skipped when Redis is unreachable, failed instead under CI.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
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

from crawlers.fetch import SafeFetcher
from crawlers.hostlease import RedisHostLease
from crawlers.netguard import AllowList
from crawlers.policy import FetchPolicy
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

    def __init__(self, env: dict[str, str], log: Path, concurrency: int = 1) -> None:
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "indexer.cli", "worker", f"--concurrency={concurrency}", "--without-gossip",
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


CRAWL_DELAY = 0.3  # seconds between two requests to one host in the politeness tests


def test_fetchers_of_two_processes_take_turns_at_a_host_through_redis(broker_url: str, make_timed_site) -> None:
    """Two fetchers that share nothing but Redis (as two worker processes): one request at a time, the delay
    from the end of one to the start of the next, whichever fetcher made them, and turns taken in strict
    alternation (the fetcher that just had one gives way to the waiting one)."""
    site = make_timed_site({"a": 5, "b": 5})
    policy = FetchPolicy(allow=AllowList.parse("127.0.0.2"), delay=CRAWL_DELAY)
    fetchers = [SafeFetcher(policy, host_lease=RedisHostLease.from_url(broker_url, hold=40)) for _ in range(2)]
    threads = [threading.Thread(target=lambda f=fetcher, section=section: [
        f.fetch(site.url(path), respect_robots=False) for path in site.paths[section]])
        for fetcher, section in zip(fetchers, "ab", strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(site.requests) == 10
    sections = [path.split("/")[1] for path, _, _ in sorted(site.requests, key=lambda request: request[1])]
    assert all(before != after for before, after in itertools.pairwise(sections)), sections  # turns, no starving
    assert min(site.gaps()) >= CRAWL_DELAY - 0.05
    assert redis.Redis.from_url(broker_url).exists("library:crawl-host:127.0.0.2:lease") == 0  # released


def test_a_redis_that_does_not_answer_leaves_the_processs_own_throttle(make_timed_site) -> None:
    site = make_timed_site({"a": 3})
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    policy = FetchPolicy(allow=AllowList.parse("127.0.0.2"), delay=0.1)
    fetcher = SafeFetcher(policy, host_lease=RedisHostLease.from_url(f"redis://127.0.0.1:{closed}/0", hold=40))
    started = time.monotonic()
    assert all(fetcher.fetch(site.url(path), respect_robots=False).status == 200 for path in site.paths["a"])
    assert time.monotonic() - started < 2 and min(site.gaps()) >= 0.1 - 0.05


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_crawls_of_one_host_in_two_worker_processes_never_overlap(
        library: Library, broker_url: str, make_timed_site, data_dir: Path) -> None:
    site = make_timed_site({"a": 4, "b": 4})
    sources = [add_source(library.store, "web", [site.url(f"/{name}/0")], provenance="government")
               for name in "ab"]
    env = {**os.environ, "LIBRARY_BROKER_URL": broker_url, "LIBRARY_DATA_DIR": str(data_dir),
           "LIBRARY_DATABASE_URL": library.settings.database_url, "LIBRARY_CRAWL_ALLOW_HOSTS": "127.0.0.2",
           "LIBRARY_CRAWL_DELAY": str(CRAWL_DELAY)}
    client = Celery("test-client")
    client.conf.update(celery_config(broker_url))
    log = data_dir / "worker.log"
    worker = Worker(env, log, concurrency=2)  # a prefork pool of two processes
    try:
        wait_for(lambda: "ready" in log.read_text(errors="replace"), "the worker", log)
        for source in sources:
            client.send_task("library.crawl_source", args=[source.id])
        runs = [wait_for(lambda source=source: ended(library, source.id), f"crawl of {source.name}", log)
                for source in sources]
    finally:
        worker.stop()
    assert [(run.status, run.new, run.failed) for run in runs] == [("finished", 4, 0)] * 2
    pids = {run.owner.split("/")[1] for run in runs}
    assert len(pids) == 2, pids  # two processes...
    assert runs[0].started_at < runs[1].finished_at and runs[1].started_at < runs[0].finished_at  # ...at once
    assert site.interleaved()
    assert min(site.gaps()) >= CRAWL_DELAY - 0.05  # one request at a time at the server, each after the delay
