"""The library core as one object: the store, the engine and the analyzer, opened once per process."""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select

from indexer.analysis import Analyzer, get_analyzer
from indexer.config import Settings
from indexer.documents import build_document
from indexer.engines import open_engine
from indexer.engines.base import IndexDocument, SearchEngine
from indexer.ingest import IngestConflict, IngestOutcome, ingest_record
from indexer.outbox import DrainReport, apply_state, drain, load_state
from indexer.search import Query, Results, search
from indexer.store import OutboxRow, RecordRow, Store, dead_letter_count, published_count
from schemas import RecordValidationError

IMPORT_BATCH = 500
REBUILD_CHUNK = 200


log = logging.getLogger(__name__)

@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[LineError] = field(default_factory=list)

    def count(self, outcome: IngestOutcome) -> None:
        setattr(self, outcome.action, getattr(self, outcome.action) + 1)


def _analyse_chunk(chunk: list[tuple[dict[str, Any], int]]) -> list[IndexDocument]:
    analyzer = get_analyzer()
    return [build_document(data, revision, analyzer) for data, revision in chunk]


def _chunks(rows: Iterable[tuple[dict[str, Any], int]], size: int) -> Iterator[list[tuple[dict[str, Any], int]]]:
    chunk: list[tuple[dict[str, Any], int]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def analyse_in_parallel(rows: Iterable[tuple[dict[str, Any], int]], workers: int) -> Iterator[IndexDocument]:
    """Documents in input order, analysed by `workers` processes with a bounded number of chunks in flight."""
    # spawn: the parent may hold tantivy writer threads, which must not be forked.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque[Future[list[IndexDocument]]] = deque()
        for chunk in _chunks(rows, REBUILD_CHUNK):
            pending.append(pool.submit(_analyse_chunk, chunk))
            if len(pending) >= workers * 2:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


class Library:
    def __init__(self, settings: Settings, store: Store, engine: SearchEngine) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self._analyzer: Analyzer | None = None
        # Who indexes what a change just committed: by default this process, at once; with a broker, the web
        # app hands it to a worker (search_app sets this), so a request does not wait for the engine.
        self.index_dispatcher: Callable[[], object] | None = None
        # Counts index changes made by this process: caches of search results key on it.
        self.changes = 0

    @classmethod
    def open(cls, settings: Settings | None = None) -> Library:
        settings = settings or Settings.from_env()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store.open(settings.database_url, migrate=True)
        return cls(settings, store, open_engine(settings))

    @property
    def analyzer(self) -> Analyzer:
        # Loaded on first use so that opening the library (e.g. for `stats`) does not load the dictionary.
        if self._analyzer is None:
            self._analyzer = get_analyzer()
        return self._analyzer

    def close(self) -> None:
        self.engine.close()
        self.store.dispose()

    # --- writes --------------------------------------------------------------------------------------------

    def ingest(self, data: dict[str, Any], *, author: str, summary: str) -> IngestOutcome:
        with self.store.session() as session:
            outcome = ingest_record(session, data, author=author, summary=summary)
        self.drain()
        return outcome

    def import_lines(
        self,
        lines: IO[str],
        *,
        author: str,
        summary: str,
        on_line: Callable[[int], None] | None = None,
    ) -> ImportReport:
        """Import JSONL: a bad line is reported with its number and reason; the good lines are stored."""
        report = ImportReport()
        batch: list[tuple[int, dict[str, Any]]] = []
        for number, line in enumerate(lines, start=1):
            if on_line:
                on_line(len(line.encode()))
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                report.errors.append(LineError(number, f"JSON として読めません（{exc.msg}、{exc.colno} 文字目）"))
                continue
            batch.append((number, data))
            if len(batch) >= IMPORT_BATCH:
                self._import_batch(batch, report, author=author, summary=summary)
                batch = []
        if batch:
            self._import_batch(batch, report, author=author, summary=summary)
        return report

    def _import_batch(
        self, batch: list[tuple[int, dict[str, Any]]], report: ImportReport, *, author: str, summary: str
    ) -> None:
        with self.store.session() as session:
            for number, data in batch:
                try:
                    with session.begin_nested():
                        report.count(ingest_record(session, data, author=author, summary=summary))
                except (RecordValidationError, IngestConflict) as exc:
                    report.errors.append(LineError(number, str(exc)))
        self.drain()

    def drain(self) -> DrainReport:
        report = drain(self.store, self.engine, self.analyzer)
        if report.indexed or report.removed:
            self.changes += 1
        return report

    def index_pending(self) -> None:
        """Index what was just committed: through the dispatcher if there is one, else here and now.

        A dispatcher that fails (the broker is restarting) falls back to indexing here: the change is committed
        either way, and the outbox row would also be picked up by the next scheduled drain.
        """
        if self.index_dispatcher is not None:
            try:
                self.index_dispatcher()
                return
            except Exception as exc:  # noqa: BLE001 - any broker failure: index here instead
                log.warning("index dispatch failed, indexing in this process: %s", exc)
        self.drain()

    def reindex(self, workers: int = 1, progress: Callable[[int], None] | None = None) -> int:
        """Rebuild the engine from SQL and switch atomically; changes made meanwhile are replayed afterwards."""
        with self.store.session(readonly=True) as session:
            high_water = session.scalar(select(func.max(OutboxRow.id))) or 0
        with self.store.session(readonly=True) as session:
            rows = (
                (row.data, row.revision)
                for row in session.execute(
                    select(RecordRow.data, RecordRow.revision)
                    .where(RecordRow.status == "published")
                    .order_by(RecordRow.id)
                    .execution_options(yield_per=1000)
                )
            )
            if workers > 1:
                documents: Iterable[IndexDocument] = analyse_in_parallel(rows, workers)
            else:
                documents = (build_document(data, revision, self.analyzer) for data, revision in rows)
            count = self.engine.rebuild(documents, progress)
        with self.store.session(readonly=True) as session:
            changed = session.scalars(select(OutboxRow.record_id).where(OutboxRow.id > high_water)).all()
            states = load_state(session, changed)
        apply_state(self.engine, self.analyzer, states)
        return count

    # --- reads ---------------------------------------------------------------------------------------------

    def search(self, query: Query) -> Results:
        return search(self.engine, self.analyzer, query)

    def get_record(self, record_id: str) -> RecordRow | None:
        with self.store.session(readonly=True) as session:
            return session.get(RecordRow, record_id)

    def published_count(self) -> int:
        with self.store.session(readonly=True) as session:
            return published_count(session)

    def stats(self) -> dict[str, Any]:
        with self.store.session(readonly=True) as session:
            by_kind = dict(session.execute(select(RecordRow.kind, func.count()).group_by(RecordRow.kind)).all())
            by_status = dict(session.execute(select(RecordRow.status, func.count()).group_by(RecordRow.status)).all())
            pending = session.scalar(select(func.count()).where(OutboxRow.processed_at.is_(None))) or 0
            dead_letters = dead_letter_count(session)
        return {
            "records": sum(by_kind.values()),
            "by_kind": by_kind,
            "by_status": by_status,
            "indexed": self.engine.count(),
            "outbox_pending": pending,
            "outbox_dead_letters": dead_letters,
            "engine": self.engine.name,
            "database": self.store.dialect,
            "data_dir": str(self.settings.data_dir),
        }


def open_jsonl(path: Path) -> IO[str]:
    # utf-8-sig: files saved by Excel or Notepad start with a BOM that is not part of the first record.
    return open(path, encoding="utf-8-sig", errors="strict", newline="")
