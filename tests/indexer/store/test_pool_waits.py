"""Pool waits (T29): the checkout timer, exhaustion counted, and a pool the web server's threads cannot exhaust."""

from __future__ import annotations

import runpy
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from indexer.store import Store
from indexer.store.pool_waits import BUCKETS_MS, PoolWaits, TimedQueuePool

GUNICORN_CONF = Path(__file__).resolve().parents[3] / "deploy" / "gunicorn.conf.py"


def test_quantiles_are_the_bucket_bounds_the_waits_fall_under() -> None:
    waits = PoolWaits()
    for _ in range(98):
        waits.observe(0.3)  # bucket 0.5
    waits.observe(7.0)  # bucket 10
    waits.observe(400.0)  # bucket 500
    report = waits.report(size=5, overflow_limit=10)
    assert report.checkouts == 100 and report.timeouts == 0
    assert report.p50_ms == 0.5
    assert report.p99_ms == 10
    assert report.max_ms == 400.0


def test_a_wait_beyond_the_last_bucket_reports_its_own_length() -> None:
    waits = PoolWaits()
    waits.observe(BUCKETS_MS[-1] * 3)
    assert waits.report(size=1, overflow_limit=0).p99_ms == BUCKETS_MS[-1] * 3


def test_an_empty_histogram_reports_zero() -> None:
    report = PoolWaits().report(size=5, overflow_limit=10)
    assert (report.checkouts, report.p50_ms, report.p99_ms, report.peak_in_use) == (0, 0.0, 0.0, 0)


def test_a_checkout_that_waits_for_a_returned_connection_is_timed(tmp_path: Path) -> None:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'one.db'}", poolclass=TimedQueuePool, pool_size=1, max_overflow=0
    )
    held = engine.connect()
    threading.Timer(0.2, held.close).start()  # gives the only connection back after 200 ms
    with engine.connect() as waiting:
        assert waiting.execute(text("SELECT 1")).scalar() == 1
    report = engine.pool.wait_report()
    assert report.checkouts == 2 and report.timeouts == 0
    assert 150 <= report.max_ms < 5000
    assert report.p99_ms == 250  # the 200 ms wait's bucket
    assert report.peak_in_use == 1
    engine.dispose()


def test_an_exhausted_pool_counts_the_checkout_that_gave_up(tmp_path: Path) -> None:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'one.db'}",
        poolclass=TimedQueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.1,
    )
    with engine.connect(), pytest.raises(PoolTimeout):
        engine.connect()
    report = engine.pool.wait_report()
    assert report.timeouts == 1 and report.checkouts == 1
    assert report.max_ms >= 100
    engine.dispose()


def test_the_store_times_its_checkouts_and_keeps_the_figures_through_dispose(database_url: str) -> None:
    store = Store.open(database_url, migrate=True)
    try:
        before = store.pool_waits()
        assert before is not None
        with store.session(readonly=True) as session:
            session.execute(text("SELECT 1"))
        store.dispose()  # a fresh pool (as after a fork or a lost server): the process's figures go on
        with store.session(readonly=True) as session:
            session.execute(text("SELECT 1"))
        after = store.pool_waits()
        assert after is not None
        assert after.checkouts == before.checkouts + 2
        assert after.timeouts == 0
    finally:
        store.dispose()


def test_an_in_memory_store_has_no_pool_to_wait_for() -> None:
    store = Store("sqlite:///:memory:")
    try:
        assert store.pool_waits() is None
    finally:
        store.dispose()


def test_concurrent_sessions_never_outnumber_the_connections(database_url: str) -> None:
    """As many sessions at once as a web worker has threads, each holding its connection a while: none gives up."""
    store = Store.open(database_url, migrate=True)
    threads_per_worker = runpy.run_path(str(GUNICORN_CONF))["threads"]
    errors: list[BaseException] = []

    def request() -> None:
        try:
            with store.session(readonly=True) as session:
                session.execute(text("SELECT 1"))
                time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    try:
        workers = [threading.Thread(target=request) for _ in range(threads_per_worker)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(30)
        report = store.pool_waits()
        assert report is not None
        assert not errors
        assert report.timeouts == 0
        # Every gunicorn thread can hold a connection at once: a request never waits on another's.
        assert report.size + report.overflow_limit >= threads_per_worker
        assert report.peak_in_use <= report.size + report.overflow_limit
    finally:
        store.dispose()
