"""T26: broker and worker failures: duplicates harmless, nothing lost, no loops.

1,000 recall notices are pushed through the shop API (each one's index work goes to the broker) while faults are
injected: the Redis server is restarted three times, one of two workers is frozen with SIGSTOP for longer than the
visibility timeout and then resumed, and a task is scheduled with a countdown. Then: every notice is stored once
(one revision), indexed at that revision, and the countdown task ran once. (e), the poison message, has a test of
its own: a task that kills its worker process every time is sent to a real worker, and is dead-lettered at its
third delivery while the tasks sent after it still run.

(b), TCP resets, has a test of its own: the workers and the web app reach Redis only through an in-repo loopback
proxy (support/tcp_proxy.py; netns/tc is not available on this machine), which aborts every live connection with
an RST five times while notices are pushed. Every notice is stored and indexed once, and after each reset each
worker consumes again (a probe task on its own queue runs) within 60 s, the T26 target (celery/celery#10302).

A private redis-server (appendonly, fsync always) on a free port, so it can be restarted; SQLite as the store.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
import redis
from celery import Celery
from flask import Flask
from sqlalchemy import func, select

from indexer.config import Settings
from indexer.library import Library
from indexer.store import NoticeReportRow, OutboxRow, RecordRow, RevisionRow, ShopRow
from indexer.tasks import DEAD_LETTER_KEY, DELIVERY_KEY, MAX_DELIVERIES, celery_config
from search_app import create_app, get_library
from search_app.auth.policy import issue_api_key

pytestmark = pytest.mark.slow

NOTICES = 1000
VISIBILITY_TIMEOUT = 8  # seconds, for the test workers (production: an hour)
SUPPORT = Path(__file__).parent / "support"
REDIS_SERVER = shutil.which("redis-server")
RESET_NOTICES = 400  # (b): pushed while every broker connection is reset RESETS times
RESETS = 5
RECOVERY_LIMIT = 60.0  # seconds from a reset until each worker consumes again (T26)


def support_module(name: str) -> ModuleType:
    """A module of tests/indexer/support (not a package: the workers find it on their PYTHONPATH)."""
    spec = importlib.util.spec_from_file_location(f"t26_support_{name}", SUPPORT / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # for its dataclasses
    spec.loader.exec_module(module)
    return module


tcp_proxy = support_module("tcp_proxy")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A redis-server of our own that can be restarted on the same port, keeping its data (AOF, fsync always)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis fsyncs the AOF and exits
            self.process.wait(timeout=20)

    def restart(self, down_for: float = 1.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class Worker:
    def __init__(self, name: str, env: dict[str, str], log: Path, queues: list[str] | None = None) -> None:
        self.log = log
        options = ["--queues", ",".join(queues)] if queues else []
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "indexer.cli", "worker", "--concurrency=1", "--without-gossip",
                 "--without-mingle", "--without-heartbeat", "--include", "poison_tasks,probe_tasks", "--hostname",
                 f"{name}@%h", *options],
                env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, number: int) -> None:
        os.killpg(self.process.pid, number)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=30)


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def wait_for(condition: Callable[[], object], what: str, logs: list[Path], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{tails}")


def jan(number: int) -> str:
    """A valid JAN (EAN-13) code: 49 (Japan), ten digits, and the check digit."""
    body = f"49{number:010d}"
    total = sum(int(digit) * (3 if index % 2 else 1) for index, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)


VALID_UNTIL = (datetime.now(UTC) + timedelta(days=30)).isoformat(timespec="seconds")


def notice(number: int) -> dict[str, object]:
    return {
        "shop_notice_id": f"fault-{number:04d}",
        "maker": f"株式会社フォルトテスト{number % 7}",
        "product": f"試験用ヒーター 型{number:04d}",
        "jan_codes": [jan(number)],
        "valid_until": VALID_UNTIL,
        "title": f"試験用ヒーター 型{number:04d} 回収のお知らせ",
        "hazard": "発火のおそれがあります。",
        "action": "使用を中止し、販売店へお持ちください。",
        "contact": "フォルトテスト 相談窓口 0120-000-000",
        "severity": "high",
    }


def notice_app(data_dir: Path, broker_url: str) -> tuple[Flask, Library, str]:
    """The web app on a SQLite store in `data_dir`, sending its jobs to `broker_url`, and a shop's API key."""
    settings = Settings.from_env(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'library.db'}",
                                 broker_url=broker_url)
    # The per-key API limit (120/min) is checked elsewhere; here it would only slow the push down.
    app = create_app({"LIBRARY_SETTINGS": settings, "TESTING": True, "RATELIMIT_ENABLED": False})
    library = get_library(app)
    with library.store.session() as db:
        shop = ShopRow(name="フォルト商店", disabled=False)
        db.add(shop)
        db.flush()
        _, key = issue_api_key(db, shop.id, label="T26")
    return app, library, key


def worker_env(broker_url: str, data_dir: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a test worker: the app's store and broker, the short visibility timeout, and the
    support tasks on its path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBRARY_")}
    env.update(LIBRARY_BROKER_URL=broker_url, LIBRARY_DATA_DIR=str(data_dir),
               LIBRARY_DATABASE_URL=f"sqlite:///{data_dir / 'library.db'}", LIBRARY_FLASK_SECRET_KEY="test-only-secret",
               LIBRARY_CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT), POISON_LOG=str(tmp_path / "poison.log"),
               PYTHONPATH=os.pathsep.join([str(SUPPORT), env.get("PYTHONPATH", "")]))
    return env


def stored_once(library: Library, count: int) -> None:
    """Nothing lost, nothing doubled: one report, one record and one revision per notice."""
    with library.store.session(readonly=True) as db:
        assert db.scalar(select(func.count()).select_from(NoticeReportRow)) == count
        assert db.scalar(select(func.count()).select_from(RecordRow).where(RecordRow.kind == "notice")) == count
        revisions = db.scalar(select(func.count()).select_from(RevisionRow).join(
            RecordRow, RecordRow.id == RevisionRow.record_id).where(RecordRow.kind == "notice"))
        assert revisions == count


def wait_until_indexed(library: Library, count: int, logs: list[Path]) -> set[str]:
    """Wait (90 s at most) until the `count` notices' records are all in the index at revision 1; their ids."""
    with library.store.session(readonly=True) as db:
        record_ids = set(db.scalars(select(NoticeReportRow.record_id)))

    def all_indexed() -> bool:
        versions = library.engine.versions()
        return len(record_ids) == count and all(versions.get(rid) == 1 for rid in record_ids)

    wait_for(all_indexed, "every notice in the index", logs, 90)
    return record_ids


def test_a_thousand_notices_survive_broker_and_worker_faults(redis_server: RedisServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    app, library, key = notice_app(data_dir, redis_server.url)
    env = worker_env(redis_server.url, data_dir, tmp_path)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [Worker("t26-one", env, logs[0]), Worker("t26-two", env, logs[1])]
    client = Celery("t26-client")
    client.conf.update(celery_config(redis_server.url))
    pushed = threading.Event()
    progress = {"sent": 0}
    errors: list[str] = []
    try:
        wait_for(lambda: all("ready" in log.read_text(errors="replace") for log in logs), "both workers", logs, 90)

        def push() -> None:
            http = app.test_client()
            headers = {"Authorization": f"Bearer {key}"}
            for number in range(NOTICES):
                response = http.post("/api/v1/notices", json=notice(number), headers=headers)
                if response.status_code != 201:
                    errors.append(f"{number}: {response.status_code} {response.get_data(as_text=True)[:200]}")
                progress["sent"] = number + 1
            pushed.set()

        pusher = threading.Thread(target=push, name="t26-push")
        pusher.start()
        faults: list[str] = []
        for share in (0.1, 0.4, 0.7):
            wait_for(lambda share=share: progress["sent"] >= NOTICES * share or pushed.is_set(),
                     f"{share:.0%} pushed", logs, 300)
            redis_server.restart()
            faults.append(f"redis restarted at {progress['sent']}")
            if share == 0.4:
                workers[0].signal(signal.SIGSTOP)
                time.sleep(VISIBILITY_TIMEOUT + 4)
                workers[0].signal(signal.SIGCONT)
                faults.append("worker frozen past the visibility timeout")
        pusher.join(timeout=600)
        assert not pusher.is_alive() and errors == [], errors[:5]

        # What beat does every minute: a drain, after the faults, picks up anything whose message was lost.
        client.send_task("library.drain_outbox")
        # (d) A task due shortly before the visibility timeout runs once: it is not restored to the queue
        # while a worker holds it. (Tasks caught by a broker restart may run twice: that is (a), and harmless.)
        delayed = client.send_task("library.drain_outbox", countdown=int(VISIBILITY_TIMEOUT * 0.75))
        # The queue recovers within a minute of the last fault and drains everything.
        wait_until_indexed(library, NOTICES, logs)
        succeeded = rf"library\.drain_outbox\[{delayed.id}\] succeeded"
        wait_for(lambda: re.search(succeeded, "".join(log.read_text(errors="replace") for log in logs)),
                 "the countdown task", logs, 60)
        time.sleep(VISIBILITY_TIMEOUT + 2)  # long enough for a wrongly restored copy to run again
    finally:
        for worker in workers:
            worker.stop()

    stored_once(library, NOTICES)
    # The countdown task ran exactly once across both workers.
    worker_logs = "".join(log.read_text(errors="replace") for log in logs)
    assert len(re.findall(rf"library\.drain_outbox\[{delayed.id}\] succeeded", worker_logs)) == 1
    library.close()


def test_notices_survive_tcp_resets_of_every_broker_connection(redis_server: RedisServer, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """(b) The web app (the producer) and both workers reach Redis only through the proxy, which resets every
    connection with an RST five times while 400 notices are pushed. After each reset, each worker runs a probe
    sent to its own queue within RECOVERY_LIMIT (celery/celery#10302 is a worker that reconnects but never
    consumes again). Every notice is then stored once and indexed once, at its revision."""
    proxy = tcp_proxy.ResettingProxy(("127.0.0.1", redis_server.port))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    app, library, key = notice_app(data_dir, proxy.url)
    assert app.extensions["celery"].conf.broker_url == proxy.url  # the producer publishes through the proxy
    env = worker_env(proxy.url, data_dir, tmp_path)
    names = ["t26-reset-one", "t26-reset-two"]
    logs = [tmp_path / f"{name}.log" for name in names]
    workers = [Worker(name, env, log, queues=["celery", f"probe.{name}"]) for name, log in zip(names, logs)]
    # The test's own messages (probes, the final drain) go to Redis directly: they are not under test, and a
    # probe sent at once after a reset measures the worker alone.
    client = Celery("t26-client")
    client.conf.update(celery_config(redis_server.url))
    broker = redis.Redis.from_url(redis_server.url)
    thresholds = [RESET_NOTICES * (number + 1) // (RESETS + 1) for number in range(RESETS)]
    lead = 10  # the push goes on during a reset, but never more than this many notices past its threshold
    reset_done = [threading.Event() for _ in thresholds]
    progress = {"sent": 0}
    errors: list[str] = []
    stop = threading.Event()
    resets: list[int] = []
    recoveries: list[float] = []

    def push() -> None:
        http = app.test_client()
        headers = {"Authorization": f"Bearer {key}"}
        for number in range(RESET_NOTICES):
            for threshold, done in zip(thresholds, reset_done):
                if number == threshold + lead:
                    done.wait(300)
            if stop.is_set():
                return
            response = http.post("/api/v1/notices", json=notice(number), headers=headers)
            if response.status_code != 201:
                errors.append(f"{number}: {response.status_code} {response.get_data(as_text=True)[:200]}")
            progress["sent"] = number + 1

    def only_through_the_proxy() -> bool:
        ours = broker.client_id()
        through = proxy.upstream_ports()
        others = [client for client in broker.client_list() if client["id"] != str(ours)]
        return bool(others) and all(int(client["addr"].rsplit(":", 1)[1]) in through for client in others)

    pusher = threading.Thread(target=push, name="t26-reset-push", daemon=True)
    try:
        wait_for(lambda: all("ready" in log.read_text(errors="replace") for log in logs), "both workers", logs, 90)
        for worker in workers:
            assert re.search(rf"Connected to redis://\S*127\.0\.0\.1:{proxy.port}/0", worker.text())
        pusher.start()
        for number, threshold in enumerate(thresholds):
            wait_for(lambda threshold=threshold: progress["sent"] >= threshold, f"{threshold} pushed", logs, 300)
            if number == 0:  # every connection to Redis but the test's own goes through the proxy
                wait_for(only_through_the_proxy, "only proxied clients on Redis", logs, 30)
            resets.append(proxy.reset_all())
            reset_at = time.monotonic()
            reset_done[number].set()
            probes = [client.send_task("tests.probe", queue=f"probe.{name}") for name in names]
            for worker, name, probe in zip(workers, names, probes):
                left = RECOVERY_LIMIT - (time.monotonic() - reset_at)
                wait_for(lambda worker=worker, probe=probe: f"tests.probe[{probe.id}] succeeded" in worker.text(),
                         f"{name} to consume again after reset {number + 1}", logs, max(left, 0.1))
            recoveries.append(time.monotonic() - reset_at)
        pusher.join(timeout=300)
        assert not pusher.is_alive() and errors == [], errors[:5]
        assert progress["sent"] == RESET_NOTICES

        client.send_task("library.drain_outbox")  # what beat does every minute, after the faults
        record_ids = wait_until_indexed(library, RESET_NOTICES, logs)
        time.sleep(VISIBILITY_TIMEOUT + 2)  # long enough for a message left unacknowledged to come back and run
        wait_for(lambda: broker.llen("celery") == 0 and broker.hlen("unacked") == 0,
                 "nothing queued or held", logs, 60)
    finally:
        stop.set()
        for done in reset_done:
            done.set()
        for worker in workers:
            worker.stop()
        proxy.close()

    # Each reset cut live connections (both workers' at least), and every client connected again through the proxy.
    assert proxy.resets == RESETS and all(count >= len(workers) for count in resets), resets
    assert proxy.accepted > proxy.connections_reset
    for worker in workers:
        assert worker.text().count("Connection to broker lost") >= RESETS
    assert max(recoveries) <= RECOVERY_LIMIT, recoveries
    stored_once(library, RESET_NOTICES)
    # Indexed once: one document per notice, each at revision 1 (no notice indexed as a second revision).
    versions = library.engine.versions()
    assert library.engine.count() == RESET_NOTICES
    assert sorted(versions) == sorted(record_ids) and set(versions.values()) == {1}
    with library.store.session(readonly=True) as db:
        assert db.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.processed_at.is_(None))) == 0
    assert broker.llen(DEAD_LETTER_KEY) == 0  # a reset is not a poison: no task was dead-lettered
    fallbacks = [r for r in caplog.records if r.getMessage().startswith("index dispatch failed")]
    print(f"resets {resets}, recoveries {[round(t, 1) for t in recoveries]} s, "
          f"accepted {proxy.accepted}, dispatch fallbacks {len(fallbacks)}")
    library.close()


def test_a_task_due_after_the_visibility_timeout_is_refused(tmp_path: Path) -> None:
    from indexer.tasks import RETRY_BACKOFF_MAX
    from indexer.tasks import VISIBILITY_TIMEOUT as PRODUCTION_TIMEOUT

    assert RETRY_BACKOFF_MAX < PRODUCTION_TIMEOUT * 0.9  # no autoretry can be refused
    settings = Settings.from_env(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'l.db'}",
                                 broker_url="memory://")
    app = create_app({"LIBRARY_SETTINGS": settings, "TESTING": True})
    task = app.extensions["celery"].tasks["library.drain_outbox"]
    with pytest.raises(ValueError, match="visibility timeout"):
        task.apply_async(countdown=PRODUCTION_TIMEOUT)
    with pytest.raises(ValueError, match="visibility timeout"):
        task.apply_async(eta=datetime.now(UTC) + timedelta(seconds=PRODUCTION_TIMEOUT))
    task.apply_async(countdown=RETRY_BACKOFF_MAX)  # the longest backoff is accepted
    # Sent by name, not through the task object: the app's send_task holds the same line.
    celery_app = app.extensions["celery"]
    with pytest.raises(ValueError, match="visibility timeout"):
        celery_app.send_task("library.drain_outbox", countdown=PRODUCTION_TIMEOUT)
    with pytest.raises(ValueError, match="visibility timeout"):
        celery_app.send_task("library.drain_outbox", eta=datetime.now(UTC) + timedelta(seconds=PRODUCTION_TIMEOUT))
    with pytest.raises(ValueError, match="visibility timeout"):  # an ISO string, as a message would carry it
        celery_app.send_task("tests.anything", eta=(datetime.now(UTC) + timedelta(hours=2)).isoformat())
    celery_app.send_task("library.drain_outbox", countdown=RETRY_BACKOFF_MAX)
    get_library(app).close()


def test_the_third_delivery_of_a_message_that_never_finished_is_dead_lettered(redis_server: RedisServer,
                                                                              tmp_path: Path) -> None:
    """(e) The delivery count in Redis: each delivery counts, a finished task clears it, and the third delivery
    (MAX_DELIVERIES) of a message whose task never finished (its worker died) is a dead letter, not run."""
    settings = Settings.from_env(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'l.db'}",
                                 broker_url=redis_server.url)
    app = create_app({"LIBRARY_SETTINGS": settings, "TESTING": True})
    task = app.extensions["celery"].tasks["library.drain_outbox"]
    client = redis.Redis.from_url(redis_server.url)
    message_id = "poison-message-1"
    key = DELIVERY_KEY.format(task_id=message_id)
    task.push_request(id=message_id, is_eager=False)
    try:
        assert task() == {"indexed": 0, "removed": 0, "failed": 0, "batches": 0}  # runs, counted once
        assert client.get(key) == b"1"
        task.after_return("SUCCESS", None, message_id, (), {}, None)
        assert client.get(key) is None  # finished: nothing held against it
        assert MAX_DELIVERIES == 3  # T26: dead-lettered after ≤ 3 deliveries
        client.set(key, MAX_DELIVERIES - 1)  # two deliveries whose worker died inside the task
        assert task() is None  # the third is not run
        dead = [json.loads(item) for item in client.lrange(DEAD_LETTER_KEY, 0, -1)]
        assert [(entry["task"], entry["id"], entry["deliveries"], entry["unfinished_runs"]) for entry in dead] == [
            ("library.drain_outbox", message_id, MAX_DELIVERIES, MAX_DELIVERIES - 1)]
        assert client.get(key) is None
    finally:
        task.pop_request()
        get_library(app).close()


def test_a_poison_task_is_dead_lettered_and_the_queue_keeps_draining(redis_server: RedisServer,
                                                                    tmp_path: Path) -> None:
    """(e) with a real worker: `tests.poison` kills its pool process every time it runs (no exception, no
    acknowledgement, as an OOM kill). Its message is delivered again after each death, dead-lettered at the third
    delivery, and the tasks sent after it run."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings = Settings.from_env(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'library.db'}",
                                 broker_url=redis_server.url)
    app = create_app({"LIBRARY_SETTINGS": settings, "TESTING": True})  # creates the store the worker opens
    poison_log = tmp_path / "poison.log"
    env = worker_env(redis_server.url, data_dir, tmp_path)
    logs = [tmp_path / "worker.log"]
    worker = Worker("t26-poison", env, logs[0])
    client = Celery("t26-client")
    client.conf.update(celery_config(redis_server.url))
    broker = redis.Redis.from_url(redis_server.url)

    def dead_letters() -> list[dict[str, object]]:
        return [json.loads(item) for item in broker.lrange(DEAD_LETTER_KEY, 0, -1)]

    def runs_of_poison() -> int:
        return len(poison_log.read_text().splitlines()) if poison_log.exists() else 0

    try:
        wait_for(lambda: "ready" in logs[0].read_text(errors="replace"), "the worker", logs, 90)
        poison = client.send_task("tests.poison")
        after = [client.send_task("library.drain_outbox") for _ in range(3)]
        wait_for(dead_letters, "the poison message's dead letter", logs, 120)
        for sent in after:
            wait_for(lambda sent=sent: f"library.drain_outbox[{sent.id}] succeeded" in logs[0].read_text(
                errors="replace"), "the tasks sent after the poison", logs, 60)
        time.sleep(VISIBILITY_TIMEOUT + 2)  # long enough for a message left unacknowledged to come back
        assert worker.process.poll() is None  # the worker itself survived every death of its pool process
    finally:
        worker.stop()
    assert [(entry["task"], entry["id"], entry["deliveries"], entry["unfinished_runs"])
            for entry in dead_letters()] == [("tests.poison", poison.id, MAX_DELIVERIES, MAX_DELIVERIES - 1)]
    assert runs_of_poison() == MAX_DELIVERIES - 1  # it ran on the first two deliveries only, never again
    assert broker.llen("celery") == 0 and broker.hlen("unacked") == 0  # nothing left queued or held
    assert broker.get(DELIVERY_KEY.format(task_id=poison.id)) is None
    get_library(app).close()
