"""Background work (DESIGN §5): Celery wired into the Flask factory, thin tasks, the beat schedule.

Every task is serialization, retry and one call into code tested without Celery (``crawlers.pipeline``,
``Library``, ``indexer.notices.expire_notices``). Task arguments are ids only, never personal data (``Jobs.submit``
refuses anything else).

Two ways to run the same tasks:

* Production, ``LIBRARY_BROKER_URL=redis://...``: ``library worker`` and ``library beat``. Messages are
  acknowledged after the task (acks_late, reject_on_worker_lost), one at a time per worker process, so a
  killed worker's task is delivered again. A repeated delivery is harmless: a crawl of a source whose run is
  alive does nothing (its lease), a crawl of a source whose worker died resumes its frontier, and draining
  the outbox or expiring notices twice changes nothing.
* Embedded default, no broker: ``InProcessJobs``, one background thread owned by the app, runs the task
  bodies (``Task.apply``) in the order they were submitted. A web request that submits a crawl returns at
  once. Submitted jobs are kept in memory only: one not started when the process exits is lost, while a
  started crawl is checkpointed in SQL and its next run resumes it. ``library serve`` runs the schedule on a
  thread of its own (``start_embedded_beat``), as ``library beat`` without a broker does in its process;
  a lock file in the data directory lets only one of them tick, however many are started.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Protocol

from celery import Celery, Task, shared_task
from celery.beat import ScheduleEntry, Scheduler
from celery.signals import worker_process_init
from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from crawlers import pipeline
from crawlers.fetch import SafeFetcher
from crawlers.hostlease import RedisHostLease
from crawlers.policy import FetchPolicy
from crawlers.sources import last_run_starts, parse_schedule
from indexer.library import Library
from indexer.notices import expire_notices
from indexer.store import SourceRow
from indexer.store.searchlog import purge_search_log

log = logging.getLogger(__name__)

RETRY_BACKOFF_MAX = 600  # seconds: the longest countdown any task is given
# Longer than any countdown (RELIABILITY T26 d): publishing a task due later is refused
# (`AppContextTask.apply_async`).
# A crawl that outlives it may be delivered a second time; the crawl's lease turns that delivery into a no-op.
# LIBRARY_CELERY_VISIBILITY_TIMEOUT shortens it for the fault-injection tests.
VISIBILITY_TIMEOUT = int(os.environ.get("LIBRARY_CELERY_VISIBILITY_TIMEOUT") or 3600)
# A message is delivered at most this many times while its task never finishes (the worker crashed, was
# OOM-killed): the delivery that reaches it is dead-lettered instead of run, so one poison message cannot stall
# the queue forever (T26 e: dead-lettered after ≤ 3 deliveries; it ran on the first two).
MAX_DELIVERIES = 3
DELIVERY_KEY = "library:deliveries:{task_id}"
DEAD_LETTER_KEY = "library:dead-letters"
MAX_RETRIES = 3
HOST_LEASE_MARGIN = 30.0  # seconds a host lease outlives a fetch's whole time budget
SCHEDULE_REFRESH = 60.0  # seconds between re-reads of the sources' schedules by beat
DRAIN_INTERVAL = 60.0
EXPIRE_INTERVAL = 900.0
PURGE_SESSIONS_INTERVAL = 3600.0
PURGE_SEARCH_LOG_INTERVAL = 24 * 3600.0  # rows past LIBRARY_SEARCH_LOG_RETENTION_DAYS go once a day

# Transient store failures (a restarted PostgreSQL, a SQLite lock held past busy_timeout) are retried.
_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_backoff_max": RETRY_BACKOFF_MAX,
          "retry_jitter": True, "max_retries": MAX_RETRIES}


def _restore_scan(visibility_timeout: float) -> dict[str, int]:
    """How often a worker looks for unacknowledged messages past the visibility timeout (a delivery lost with
    its connection or its worker). Kombu looks every interval × throttle seconds (10 × 10 by default): fine
    beside an hour, but it would leave a message of a short timeout waiting ten times the timeout. At most a
    quarter of the timeout, never more often than every second."""
    period = max(1.0, min(100.0, visibility_timeout / 4))
    interval = max(1, min(10, round(period)))
    return {"unacked_restore_interval": interval, "unacked_restore_throttle": max(1, int(period // interval))}


def celery_config(broker_url: str | None) -> dict[str, Any]:
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT, **_restore_scan(VISIBILITY_TIMEOUT)},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A worker that lost the broker cannot acknowledge its running tasks, which are delivered again:
        # cancel them rather than run them twice.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_expires": None,  # no result backend, so beat schedules no celery.backend_cleanup
        "timezone": "Asia/Tokyo",  # cron schedules are a Japanese town's local time
        "beat_scheduler": "indexer.tasks:SourceScheduler",
        "beat_max_loop_interval": SCHEDULE_REFRESH,
    }


class AppContextTask(Task):
    """Runs each task inside its Flask app's context, where the app's Library lives (STYLE).

    With a Redis broker, each delivery of a message is counted in Redis before the task runs, and the count is
    cleared when the task returns (success, failure or retry). A count still set at the next delivery means the
    worker died inside the task; the MAX_DELIVERIES-th delivery of such a message is dead-lettered: recorded in
    the `library:dead-letters` list (its deliveries, and how many runs never finished) and acknowledged without
    running.
    """

    def __call__(self, *args: object, **kwargs: object) -> object:
        counter = _delivery_counter(self)
        deliveries = 0
        if counter is not None:
            client, key = counter
            try:
                deliveries = client.incr(key)
                client.expire(key, 7 * 24 * 3600)
            except (RedisError, OSError) as exc:  # the broker is restarting: run uncounted rather than not at all
                log.warning("task %s[%s]: delivery not counted: %s", self.name, self.request.id, exc)
            if deliveries >= MAX_DELIVERIES:
                log.error("task %s[%s] dead-lettered at delivery %d: %d runs never finished", self.name,
                          self.request.id, deliveries, deliveries - 1)
                client.rpush(DEAD_LETTER_KEY, json.dumps(
                    {"task": self.name, "id": self.request.id, "args": list(args), "deliveries": deliveries,
                     "unfinished_runs": deliveries - 1}))
                client.delete(key)
                return None
        with self.app.flask_app.app_context():
            return self.run(*args, **kwargs)

    def apply_async(self, args: Any = None, kwargs: Any = None, task_id: str | None = None, producer: Any = None,
                    link: Any = None, link_error: Any = None, shadow: str | None = None, **options: Any) -> Any:
        """The long-ETA guard (``_refuse_long_eta``) before anything else, so a refused task has no side effect
        (LibraryCelery.send_task checks again, for messages sent by name)."""
        _refuse_long_eta(self.name, options.get("countdown"), options.get("eta"), _visibility_timeout(self.app))
        return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)

    def after_return(self, status: str, retval: object, task_id: str, args: object, kwargs: object,
                     einfo: object) -> None:
        counter = _delivery_counter(self)
        if counter is not None:
            client, key = counter
            try:
                client.delete(key)
            except (RedisError, OSError) as exc:
                log.warning("task %s: delivery count not cleared: %s", task_id, exc)


_redis_clients: dict[str, Any] = {}


def _delivery_counter(task: Task) -> tuple[Any, str] | None:
    """(Redis client, key) counting this message's deliveries; None without a Redis broker or a task id (a
    task run in-process with `apply`)."""
    broker = task.app.conf.broker_url
    if not broker or not str(broker).startswith(("redis://", "rediss://")) or not task.request.id:
        return None
    if task.request.is_eager:
        return None
    client = _redis_clients.get(broker)
    if client is None:
        client = _redis_clients[broker] = Redis.from_url(broker, socket_timeout=10)
    return client, DELIVERY_KEY.format(task_id=task.request.id)




class LibraryCelery(Celery):
    """A Celery app that knows its Flask app, for the task class and the beat scheduler."""

    def __init__(self, flask_app: Flask) -> None:
        super().__init__(flask_app.import_name, task_cls=AppContextTask)
        self.flask_app = flask_app

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, countdown: float | None = None,
                  eta: Any = None, **options: Any) -> Any:
        """Every message leaves through here (``apply_async`` too), so the long-ETA guard holds for all."""
        _refuse_long_eta(name, countdown, eta, _visibility_timeout(self))
        return super().send_task(name, args, kwargs, countdown=countdown, eta=eta, **options)


def _visibility_timeout(app: Celery) -> float:
    return float((app.conf.broker_transport_options or {}).get("visibility_timeout") or VISIBILITY_TIMEOUT)


def _refuse_long_eta(name: str, countdown: float | None, eta: Any, visibility_timeout: float) -> None:
    """A task due after the visibility timeout would be delivered again before it is due (T26 d): refused.
    Covers submissions and autoretries (their backoff is capped far below it)."""
    wait = float(countdown or 0)
    if eta is not None:
        due = eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))
        wait = max(wait, (due if due.tzinfo else due.replace(tzinfo=UTC)).timestamp() - time.time())
    if wait > visibility_timeout * 0.9:
        raise ValueError(f"task {name} due in {wait:.0f} s: later than the broker's visibility timeout allows")


class CrawlFetcher:
    """The one SafeFetcher of this process's crawls (app.extensions "crawl_fetcher"), built at first use.

    Sharing it shares its per-host throttle and its robots.txt parsers, so two crawls of one host in this
    process take turns at it (scrapy's politeness, per process). With a Redis broker it also takes a Redis
    lease per host, so the worker processes take turns too. A prefork child calls ``forget`` at start: it
    builds its own rather than use a copy of its parent's locks and Redis connection.
    """

    def __init__(self, broker_url: str | None) -> None:
        self._broker_url = broker_url
        self._lock = threading.Lock()
        self._fetcher: SafeFetcher | None = None

    def get(self) -> SafeFetcher:
        with self._lock:
            if self._fetcher is None:
                self._fetcher = build_crawl_fetcher(self._broker_url)
            return self._fetcher

    def forget(self) -> None:
        self._lock = threading.Lock()
        self._fetcher = None


def build_crawl_fetcher(broker_url: str | None) -> SafeFetcher:
    """A fetcher with the environment's policy and, with a Redis broker, the cross-process host lease.
    Raises ValueError (Japanese) on a bad crawl setting."""
    policy = FetchPolicy.from_env()
    lease = None
    if broker_url and str(broker_url).startswith(("redis://", "rediss://")):
        lease = RedisHostLease.from_url(broker_url, hold=policy.total_timeout + HOST_LEASE_MARGIN)
    return SafeFetcher(policy, host_lease=lease)


class Jobs(Protocol):
    def submit(self, task_name: str, *ids: int) -> object: ...


def _check_ids(ids: tuple[object, ...]) -> None:
    if not all(type(value) is int for value in ids):
        raise TypeError(f"task arguments are ids (int) only, got {[type(value).__name__ for value in ids]}")


class BrokerJobs:
    """Production: jobs go to the broker for `library worker`."""

    def __init__(self, celery_app: Celery) -> None:
        self._celery = celery_app

    def submit(self, task_name: str, *ids: int) -> object:
        _check_ids(ids)
        return self._celery.tasks[task_name].apply_async(args=ids)


class InProcessJobs:
    """Embedded default: jobs run one at a time on a daemon thread of this process (see the module doc).

    The thread is a daemon so that stopping the process never waits for a crawl: the crawl's run is left
    to a successor, which takes it over at once because this process is gone.
    """

    def __init__(self, celery_app: Celery) -> None:
        self._celery = celery_app
        self._queue: SimpleQueue[tuple[Task, tuple[int, ...], Future[Any]]] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, task_name: str, *ids: int) -> Future[Any]:
        _check_ids(ids)
        task = self._celery.tasks[task_name]
        future: Future[Any] = Future()
        self._queue.put((task, ids, future))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="library-jobs", daemon=True)
                self._thread.start()
        return future

    def _work(self) -> None:
        while True:
            task, ids, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(task.apply(args=ids, throw=True).get())
            except BaseException as exc:  # handed to whoever waits on the future; the thread goes on
                log.exception("job %s%s failed", task.name, ids)
                future.set_exception(exc)


def celery_init_app(app: Flask) -> Celery:
    """Create the app's Celery app and its job runner (app.extensions "celery" and "jobs").

    Configuration: ``celery_config`` from the library's settings, then the app's ``CELERY`` mapping. Call
    after ``init_library``.
    """
    celery_app = LibraryCelery(app)
    celery_app.conf.update(celery_config(app.extensions["library"].settings.broker_url))
    celery_app.conf.update(app.config.get("CELERY", {}))
    celery_app.set_default()
    worker_process_init.connect(_pool_child_setup(app), weak=False)
    app.extensions["celery"] = celery_app
    app.extensions["crawl_fetcher"] = CrawlFetcher(celery_app.conf.broker_url)
    app.extensions["jobs"] = BrokerJobs(celery_app) if celery_app.conf.broker_url else InProcessJobs(celery_app)
    if celery_app.conf.broker_url:
        # Production: what a request commits is indexed by a worker, so the request never waits for the engine
        # (Library.index_pending falls back to indexing in-process when the broker cannot take the job).
        jobs = app.extensions["jobs"]
        app.extensions["library"].index_dispatcher = lambda: jobs.submit("library.drain_outbox")
    return celery_app


def _pool_child_setup(app: Flask) -> Callable[..., None]:
    def forget_inherited_connections(**_: object) -> None:
        # A prefork pool child must not share the parent's database connections (SQLAlchemy's fork recipe):
        # it leaves them to the parent and opens its own.
        app.extensions["library"].store.engine.dispose(close=False)
        app.extensions["crawl_fetcher"].forget()

    return forget_inherited_connections


def get_jobs(app: Flask) -> Jobs:
    return app.extensions["jobs"]


def _library() -> Library:
    return current_app.extensions["library"]


# --- tasks --------------------------------------------------------------------------------------------------


@shared_task(name="library.crawl_source", **_RETRY)
def crawl_source(source_id: int) -> dict[str, Any]:
    try:
        return pipeline.crawl(_library(), source_id, fetcher=current_app.extensions["crawl_fetcher"].get()).as_dict()
    except pipeline.SourceBusy as exc:
        return {"source_id": source_id, "skipped": f"run {exc.run_id} is still running"}


@shared_task(name="library.drain_outbox", **_RETRY)
def drain_outbox() -> dict[str, int]:
    return asdict(_library().drain())


@shared_task(name="library.reindex", **_RETRY)
def reindex() -> int:
    return _library().reindex(workers=1)


@shared_task(name="library.expire_notices", **_RETRY)
def expire_notices_task() -> int:
    return expire_notices(_library())


@shared_task(name="library.purge_search_log", **_RETRY)
def purge_search_log_task() -> int:
    return purge_search_log(_library().store)


@shared_task(name="library.purge_sessions", **_RETRY)
def purge_sessions_task() -> int:
    from indexer.accounts import purge_web_sessions

    return purge_web_sessions(_library().store)


# --- beat -----------------------------------------------------------------------------------------------------


def beat_schedule(sources: list[SourceRow], last_runs: dict[int, datetime]) -> dict[str, dict[str, Any]]:
    """The fixed entries, and one crawl entry per enabled source with a schedule, counted from its last run."""
    entries: dict[str, dict[str, Any]] = {
        "drain-outbox": {"task": "library.drain_outbox", "schedule": DRAIN_INTERVAL},
        "expire-notices": {"task": "library.expire_notices", "schedule": EXPIRE_INTERVAL},
        "purge-search-log": {"task": "library.purge_search_log", "schedule": PURGE_SEARCH_LOG_INTERVAL},
        # Anonymous sessions (a login form's CSRF token) would otherwise pile up.
        "purge-sessions": {"task": "library.purge_sessions", "schedule": PURGE_SESSIONS_INTERVAL},
    }
    for source in sources:
        if source.enabled and source.schedule:
            entries[f"crawl-source-{source.id}"] = {
                "task": "library.crawl_source",
                "schedule": parse_schedule(source.schedule),
                "args": (source.id,),
                "last_run_at": last_runs.get(source.id),
            }
    return entries


class SourceScheduler(Scheduler):
    """Celery beat's scheduler with the sources' crawl entries, re-read from SQL every SCHEDULE_REFRESH s.

    A source added or changed in the admin page is scheduled without restarting beat, and a restarted beat
    neither repeats nor skips a crawl: each source's schedule counts from its latest run in SQL.
    """

    _refresh_at = 0.0

    def setup_schedule(self) -> None:
        super().setup_schedule()
        self._refresh()

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if time.monotonic() >= self._refresh_at:
            self._refresh()
        return super().tick(*args, **kwargs)

    def _refresh(self) -> None:
        self._refresh_at = time.monotonic() + SCHEDULE_REFRESH
        store = self.app.flask_app.extensions["library"].store
        try:
            with store.session(readonly=True) as session:
                sources = list(session.scalars(select(SourceRow).where(SourceRow.enabled,
                                                                       SourceRow.schedule.is_not(None))))
                last_runs = last_run_starts(session)
        except SQLAlchemyError:  # the database is away: keep the schedule we have, read it again later
            log.exception("beat: could not read the sources' schedules")
            return
        self.merge_inplace(beat_schedule(sources, last_runs))


class InProcessScheduler(SourceScheduler):
    """The same schedule for the embedded default: due entries go to the app's InProcessJobs, no broker."""

    producer = None  # beat's own producer would connect to a broker

    def apply_entry(self, entry: ScheduleEntry, producer: object = None) -> None:
        log.info("beat: running due task %s (%s)", entry.name, entry.task)
        get_jobs(self.app.flask_app).submit(entry.task, *entry.args)


def run_beat_in_process(celery_app: Celery, stop: threading.Event) -> None:
    """Embedded beat: tick the schedule until ``stop`` is set; jobs run on this process's job thread."""
    scheduler = InProcessScheduler(celery_app)
    while not stop.is_set():
        stop.wait(scheduler.tick())


# --- the embedded scheduler: `library serve` (or `library beat`) without a broker --------------------------

SCHEDULE_LOCK_FILE = "schedule.lock"
LOCK_RETRY = 10.0  # seconds between two tries of a process that waits for another's schedule lock
BEAT_RESTART_DELAY = 30.0  # after an unexpected error in the scheduler, before it ticks again


class ScheduleLock:
    """One embedded scheduler per data directory: an exclusive ``flock`` on ``<data dir>/schedule.lock``.

    The OS drops the lock with its process, even after kill -9, so there is never a stale lock to clean up,
    and a waiting process takes over. Two opens conflict even within one process (flock locks belong to
    the open file). Processes on other hosts that share only the database are the broker setup's case:
    there, one ``library beat`` runs the schedule.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / SCHEDULE_LOCK_FILE
        self._file: Any = None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{socket.gethostname()}/{os.getpid()}\n")  # for an operator who wonders who holds it
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def run_embedded_beat(celery_app: Celery, stop: threading.Event,
                      on_wait: Callable[[], None] | None = None) -> None:
    """Run the schedule in this process until ``stop`` is set, once per data directory: wait for the
    schedule lock (``on_wait`` is called once if another process holds it), then tick. An unexpected error
    in the scheduler is logged and the schedule starts again, so one bad tick does not end it for good."""
    lock = ScheduleLock(celery_app.flask_app.extensions["library"].settings.data_dir)
    told = False
    while not stop.is_set():
        if not lock.acquire():
            if not told:
                log.info("beat: %s is held by another process; waiting to take over", lock.path)
                if on_wait:
                    on_wait()
                told = True
            stop.wait(LOCK_RETRY)
            continue
        try:
            run_beat_in_process(celery_app, stop)
        except Exception:
            log.exception("beat: the embedded scheduler failed; it starts again in %s s", BEAT_RESTART_DELAY)
            stop.wait(BEAT_RESTART_DELAY)
        finally:
            lock.release()


def start_embedded_beat(app: Flask, stop: threading.Event | None = None) -> threading.Thread:
    """`library serve` without a broker: the schedule on a daemon thread of the web process. Due jobs go to
    the app's InProcessJobs thread; no request runs one or waits for one (DESIGN §5)."""
    thread = threading.Thread(target=run_embedded_beat, args=(app.extensions["celery"], stop or threading.Event()),
                              name="library-beat", daemon=True)
    thread.start()
    return thread
