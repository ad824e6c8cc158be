"""T22 across processes: two gunicorn workers share one counter in Redis, so a client cannot double its allowance
by landing on the other worker. Uses the real Redis at 127.0.0.1:6379 (database 15, flushed of our keys)."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from search_app.auth.ratelimit import SEARCH_LIMIT

from .conftest import ROOT
from .test_web_server import free_port

REDIS_URL = os.environ.get("LIBRARY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SEARCH_PER_MINUTE = int(SEARCH_LIMIT.split("/")[0])


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture()
def two_workers(tmp_path: Path) -> Iterator[int]:
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LIBRARY_", "GUNICORN_", "WEB_"))}
    environment.update(
        LIBRARY_DATA_DIR=str(tmp_path),
        LIBRARY_FLASK_SECRET_KEY="test-only-secret",
        LIBRARY_FLASK_RATELIMIT_STORAGE_URI=REDIS_URL,
        # A fresh prefix per run: counters of an earlier run in the same minute do not leak in.
        LIBRARY_FLASK_RATELIMIT_KEY_PREFIX=f"test-{uuid.uuid4().hex}",
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="1",
    )
    command = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
               "--max-requests", "0", "search_app:create_app()"]
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(port, "/api/v1/ping")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.3)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def get(port: int, path: str) -> tuple[int, bytes]:
    """(status, body) over a new connection each time, so the kernel spreads the requests over both workers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_search_limit_holds_across_two_workers(two_workers: int) -> None:
    path = "/api/v1/search?q=%E5%9B%B3%E6%9B%B8%E9%A4%A8"
    statuses = [get(two_workers, path)[0] for _ in range(SEARCH_PER_MINUTE + 10)]
    # With a per-process counter each worker would allow 60, and all 70 would pass.
    assert statuses.count(200) == SEARCH_PER_MINUTE
    assert statuses[SEARCH_PER_MINUTE:] == [429] * 10
