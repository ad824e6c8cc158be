"""Background work (DESIGN §5): Celery wired into the Flask factory, thin tasks, the beat schedule.

Every task is serialization, retry and one call into code tested without Celery (``crawlers.pipeline``,
``Library``, ``expire_notices`` below). Task arguments are ids only, never personal data (``Jobs.submit``
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
  started crawl is checkpointed in SQL and its next run resumes it. ``library beat`` without a broker runs
  the same schedule and its jobs in its own process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict
from datetime import UTC, datetime
from queue import SimpleQueue
from typing import Any, Protocol

from celery import Celery, Task, shared_task
from celery.beat import ScheduleEntry, Scheduler
from celery.signals import worker_process_init
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from crawlers import pipeline
from crawlers.sources import last_run_starts, parse_schedule
from indexer.ingest import ingest_record
from indexer.library import Library
from indexer.store import RecordRow, SourceRow

log = logging.getLogger(__name__)

RETRY_BACKOFF_MAX = 600  # seconds: the longest countdown any task is given
# Longer than any countdown (RELIABILITY T26 d). A crawl that outlives it may be delivered a second time;
# the crawl's lease turns that delivery into a no-op.
VISIBILITY_TIMEOUT = 3600
MAX_RETRIES = 3
SCHEDULE_REFRESH = 60.0  # seconds between re-reads of the sources' schedules by beat
DRAIN_INTERVAL = 60.0
EXPIRE_INTERVAL = 900.0
EXPIRED_SUMMARY = "掲載期限（valid_until）を過ぎたため期限切れにしました"

# Transient store failures (a restarted PostgreSQL, a SQLite lock held past busy_timeout) are retried.
_RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_backoff_max": RETRY_BACKOFF_MAX,
          "retry_jitter": True, "max_retries": MAX_RETRIES}


def celery_config(broker_url: str | None) -> dict[str, Any]:
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT},
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
    """Runs each task inside its Flask app's context, where the app's Library lives (STYLE)."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        with self.app.flask_app.app_context():
            return self.run(*args, **kwargs)


class LibraryCelery(Celery):
    """A Celery app that knows its Flask app, for the task class and the beat scheduler."""

    def __init__(self, flask_app: Flask) -> None:
        super().__init__(flask_app.import_name, task_cls=AppContextTask)
        self.flask_app = flask_app


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
    app.extensions["jobs"] = BrokerJobs(celery_app) if celery_app.conf.broker_url else InProcessJobs(celery_app)
    return celery_app


def _pool_child_setup(app: Flask) -> Callable[..., None]:
    def forget_inherited_connections(**_: object) -> None:
        # A prefork pool child must not share the parent's database connections (SQLAlchemy's fork recipe):
        # it leaves them to the parent and opens its own.
        app.extensions["library"].store.engine.dispose(close=False)

    return forget_inherited_connections


def get_jobs(app: Flask) -> Jobs:
    return app.extensions["jobs"]


def _library() -> Library:
    return current_app.extensions["library"]


# --- library work that the tasks call ----------------------------------------------------------------------


def expire_notices(library: Library, now: datetime | None = None) -> int:
    """Mark published notices whose valid_until has passed as expired: a revision by "system", then the
    index drops them. Returns how many. Run twice, the second run finds nothing to do."""
    now = now or datetime.now(UTC)
    expired = 0
    with library.store.session() as session:
        # Locked, so a concurrent run waits and then no longer sees these rows as published (PostgreSQL).
        notices = session.scalars(
            select(RecordRow)
            .where(RecordRow.kind == "notice", RecordRow.status == "published",
                   RecordRow.data["valid_until"].as_string().is_not(None))
            .with_for_update()
        ).all()
        for row in notices:
            if datetime.fromisoformat(row.data["valid_until"]) < now:
                ingest_record(session, {**row.data, "status": "expired"}, author="system", summary=EXPIRED_SUMMARY)
                expired += 1
    if expired:
        library.drain()
    return expired


# --- tasks --------------------------------------------------------------------------------------------------


@shared_task(name="library.crawl_source", **_RETRY)
def crawl_source(source_id: int) -> dict[str, Any]:
    try:
        return pipeline.crawl(_library(), source_id).as_dict()
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


# --- beat -----------------------------------------------------------------------------------------------------


def beat_schedule(sources: list[SourceRow], last_runs: dict[int, datetime]) -> dict[str, dict[str, Any]]:
    """The fixed entries, and one crawl entry per enabled source with a schedule, counted from its last run."""
    entries: dict[str, dict[str, Any]] = {
        "drain-outbox": {"task": "library.drain_outbox", "schedule": DRAIN_INTERVAL},
        "expire-notices": {"task": "library.expire_notices", "schedule": EXPIRE_INTERVAL},
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
