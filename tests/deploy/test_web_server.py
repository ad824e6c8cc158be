"""The web service's real command: gunicorn with deploy/gunicorn.conf.py serving the app, checked by the
image's healthcheck script, on loopback and the embedded engine (the container differs only in its
environment).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import ROOT, load_compose, missing

HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthcheck(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), url], capture_output=True, text=True, timeout=30, check=False
    )


@contextmanager
def gunicorn(data_dir: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, log file) of gunicorn started as docker-compose.yml's web command, bound to loopback; stopped
    gracefully (SIGTERM) when the block ends, so the workers' exit hooks have run by then."""
    if importlib.util.find_spec("gunicorn") is None:
        missing("gunicorn")
    log = data_dir / "gunicorn.log"
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LIBRARY_", "ELASTICSEARCH_", "GUNICORN_", "WEB_CONCURRENCY"))
    }
    environment.update(
        LIBRARY_DATA_DIR=str(data_dir),
        LIBRARY_FLASK_SECRET_KEY="test-only-secret",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="2",
    )
    web = load_compose()["services"]["web"]["command"]
    assert web[0] == "gunicorn"
    # The compose command, with the listening address moved to a free loopback port (-b overrides the file).
    command = [sys.executable, "-m", "gunicorn", *web[1:-1], "-b", f"127.0.0.1:{port}", web[-1]]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while healthcheck(f"{url}/healthz").returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not become healthy:\n{log.read_text(errors='replace')}")
            time.sleep(0.5)
        yield url, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with gunicorn(tmp_path_factory.mktemp("data")) as running:
        yield running


def test_gunicorn_serves_the_app_and_the_healthcheck_passes(server: tuple[str, Path]) -> None:
    url, log = server
    assert healthcheck(f"{url}/healthz").returncode == 0
    text = log.read_text(errors="replace")
    assert "Using worker: gthread" in text, text


def test_the_access_log_keeps_no_query_strings(server: tuple[str, Path]) -> None:
    """Search terms can be personal data (T08): the access log records the path only."""
    url, log = server
    canary = "canary-zz9-yamada-taro"
    assert healthcheck(f"{url}/healthz?q={canary}").returncode == 0
    time.sleep(0.5)  # the access line is written after the response
    text = log.read_text(errors="replace")
    assert '"GET /healthz HTTP/1.1" 200' in text, text
    assert canary not in text


def test_the_healthcheck_fails_when_nothing_answers() -> None:
    result = healthcheck(f"http://127.0.0.1:{free_port()}/healthz")
    assert result.returncode == 1
    assert "unhealthy" in result.stderr


def test_the_healthcheck_refuses_other_schemes() -> None:
    assert healthcheck("file:///etc/passwd").returncode == 1


def test_each_worker_logs_its_pool_waits_and_cache_figures_as_it_stops(tmp_path: Path) -> None:
    """T29 asks for no pool exhaustion and a pool wait p99 <= 50 ms: the figures live inside the worker
    processes, so each one logs them when it stops (benchmarks/load_t29.py reads them)."""
    with gunicorn(tmp_path) as (url, log):
        for query in ("図書館", "リコール", "子育て"):
            with urllib.request.urlopen(f"{url}/api/v1/search?q={urllib.parse.quote(query)}") as response:
                assert response.status == 200
    lines = re.findall(r"database pool waits (\{.*\})", log.read_text(errors="replace"))
    assert len(lines) == 1, log.read_text(errors="replace")  # WEB_CONCURRENCY=1
    figures = json.loads(lines[0])
    assert figures["checkouts"] >= 1
    assert figures["timeouts"] == 0
    assert figures["size"] == 5 and figures["overflow_limit"] == 10  # SQLite file: QueuePool 5 + 10
    assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    cache = re.findall(r"search result cache (\{.*\})", log.read_text(errors="replace"))
    assert [json.loads(line)["misses"] for line in cache] == [3]  # three different searches
