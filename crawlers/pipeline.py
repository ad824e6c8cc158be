"""Crawl pipelines (issue 4): one run of a source, from its frontier to records, resumable and exactly-once.

The shape is scrapy's, in one process: the frontier hands out units (a page; a feed; a CSV or uploaded file),
the SafeFetcher fetches them politely, a pure parser (``crawlers.parse``) turns bytes into drafts, and the
item pipeline finishes each draft (source, provenance, organization, external id, duplicate content) and
hands it to ``indexer.ingest``. Records become searchable through the outbox, drained every
``DRAIN_EVERY`` records and before the run is marked finished.

Exactly once, whatever happens to the process:

* A unit's records, its frontier state, the links it adds, its conditional-GET state and the run's counters
  are committed in ONE transaction. A worker killed at any moment leaves a frontier that matches the
  records; the next run of the source takes the frontier over and continues from the first pending unit,
  which was the one in flight. Re-doing a unit is harmless anyway: records dedupe by source + external id,
  and an unchanged page makes no revision.
* A run is a lease (owner, heartbeat). A second run of a source whose run is alive is refused (SourceBusy):
  a duplicate delivery of a crawl task does nothing. A run whose worker died (its process is gone, or its
  heartbeat is older than ``LEASE``) is marked interrupted and taken over; every commit of a run checks
  that it still owns it, so a worker that wakes up after losing its lease stops instead of writing on.
* A unit in flight when ``MAX_UNIT_ATTEMPTS`` runs died or failed is given up as failed: a page that kills
  the worker, or trips a bug, cannot make every later run die on it (T26, no loops).

Errors of one unit (fetch, parse, validation) are recorded on the run, bounded to ``MAX_ERRORS``; the crawl
goes on (T13). Web runs follow links breadth-first within the source's ``WebScope``; feed, opendata and
upload sources have one unit, re-done whole when a run is interrupted. Upload sources follow the upload
policy of ``crawlers.uploads`` (one record namespace, own-copy URLs, per-line errors).
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crawlers.charset import content_key
from crawlers.errors import FetchError, RobotsDisallowed
from crawlers.fetch import FetchResult, SafeFetcher, redact_url
from crawlers.hostlease import process_alive
from crawlers.parse import ParseError
from crawlers.parse.feed import feed_entry_draft, parse_feed
from crawlers.parse.html import extract_html, page_draft
from crawlers.parse.opendata import parse_opendata_csv
from crawlers.parse.upload import parse_upload
from crawlers.policy import FetchPolicy
from crawlers.sources import WebScope
from crawlers.uploads import OWN_COPY_KEY_PREFIX, UPLOAD_TAG, own_copy_key, own_copy_url
from indexer.ingest import IngestConflict, IngestOutcome, ingest_record
from indexer.library import Library
from indexer.store import (
    CrawlFrontierRow,
    CrawlRunRow,
    FetchStateRow,
    RecordRow,
    RunStatus,
    SourceKind,
    SourceRow,
    UnitState,
    content_hash_of,
)
from indexer.store.models import utcnow
from schemas import RecordValidationError

log = logging.getLogger("crawlers.pipeline")

# Longer than one unit can take: a fetch of at most 30 s, retries included, and its turn at the host (which
# other crawls of that host share).
LEASE = timedelta(minutes=10)
MAX_ERRORS = 50
MAX_UNIT_ATTEMPTS = 3
DRAIN_EVERY = 100  # records stored between two drains of the outbox
INGEST_BATCH = 500  # drafts of one file per transaction, so a big CSV never holds SQLite's write lock long
MAX_EXTERNAL_ID = 500  # the record schema's limit for a line
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

Progress = Callable[["Counts", int], None]  # counts so far, units still queued


class SourceNotFound(LookupError):
    """No source has this id."""


class SourceBusy(RuntimeError):
    """The source has a live run; this crawl did nothing."""

    def __init__(self, run_id: int) -> None:
        super().__init__(f"crawl run {run_id} of this source is still running")
        self.run_id = run_id


class LeaseLost(RuntimeError):
    """Another worker took the run over (this one was presumed dead); this one must stop writing."""


@dataclass
class Counts:
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, run: CrawlRunRow) -> Counts:
        return cls(**{field.name: getattr(run, field.name) for field in fields(cls)})

    def text(self) -> str:
        """The summary line of the CLI and the admin page."""
        return (f"取得 {self.fetched}・新規 {self.new}・更新 {self.updated}・変更なし {self.unchanged}・"
                f"失敗 {self.failed}")

    def count(self, outcome: IngestOutcome) -> None:
        name = {"created": "new", "updated": "updated", "unchanged": "unchanged"}[outcome.action]
        setattr(self, name, getattr(self, name) + 1)


@dataclass(frozen=True)
class CrawlSummary:
    source_id: int
    run_id: int
    status: RunStatus
    resumed_from_id: int | None
    counts: Counts
    errors: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        """Ids, counts and error texts only: what a task may return."""
        return {"source_id": self.source_id, "run_id": self.run_id, "status": str(self.status),
                "resumed_from_id": self.resumed_from_id, **asdict(self.counts), "errors": len(self.errors)}


@dataclass(frozen=True)
class _Unit:
    id: int
    key: str
    url: str  # a canonical URL, or a file path
    depth: int


def _charset_of(state: FetchStateRow) -> dict[str, str | None]:
    """A 304 keeps how the unchanged document was decoded."""
    return {"encoding": state.encoding, "encoding_source": state.encoding_source}


def _key(location: str) -> str:
    """Frontier and fetch-state key: sha256 of a canonical URL (= indexer.ingest.url_key) or a file path."""
    return hashlib.sha256(location.encode()).hexdigest()


def _owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def _holds_lease(run: CrawlRunRow, now: datetime) -> bool:
    """Is the run's worker alive? Its heartbeat must be recent, and on this host its process must exist.

    The process check makes a takeover after kill -9 immediate on one machine; across machines (or
    containers with their own hostname) the heartbeat decides.
    """
    if now - run.heartbeat_at > LEASE:
        return False
    host, _, rest = run.owner.partition("/")
    pid = int(rest.partition("/")[0] or 0)
    if host == socket.gethostname() and pid != os.getpid():
        return process_alive(pid)
    return True


def _error(unit: str, exc: BaseException) -> dict[str, str]:
    if isinstance(exc, FetchError):
        rule, message = str(exc.rule), exc.message
    elif isinstance(exc, ParseError):
        rule, message = "parse", str(exc)
    elif isinstance(exc, RecordValidationError | IngestConflict):
        rule, message = "invalid-record", str(exc)
    else:
        rule, message = type(exc).__name__, str(exc)
    where = redact_url(unit) if "://" in unit else Path(unit).name
    return {"url": where, "rule": rule, "message": message[:500], "at": utcnow().isoformat()}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Run:
    """A claimed run: its identity, in-memory counts and errors, and the frontier still to do."""

    def __init__(self, source: SourceRow, run: CrawlRunRow, rows: Iterable[CrawlFrontierRow]) -> None:
        self.source = source
        self.id = run.id
        self.owner = run.owner
        self.resumed_from_id = run.resumed_from_id
        self.counts = Counts()
        self.errors: list[dict[str, str]] = []
        self.units_done = 0
        self.queue: deque[_Unit] = deque()
        self.seen: set[str] = set()
        for row in rows:
            self.seen.add(row.url_key)
            if row.state == UnitState.PENDING:
                self.queue.append(_Unit(row.id, row.url_key, row.url, row.depth))

    def add_error(self, unit: str, exc: BaseException) -> None:
        self.counts.failed += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(_error(unit, exc))

    def fence(self, session: Session, **changes: object) -> None:
        """Write the run's counters (and ``changes``) if this worker still owns the run, else LeaseLost."""
        result = session.execute(
            update(CrawlRunRow)
            .where(CrawlRunRow.id == self.id, CrawlRunRow.owner == self.owner,
                   CrawlRunRow.status == RunStatus.RUNNING.value)
            .values(heartbeat_at=utcnow(), errors=list(self.errors), **asdict(self.counts), **changes)
        )
        if result.rowcount != 1:
            raise LeaseLost(f"crawl run {self.id} was taken over by another worker")

    def summary(self, status: RunStatus) -> CrawlSummary:
        return CrawlSummary(self.source.id, self.id, status, self.resumed_from_id, self.counts, self.errors)


def _start_units(source: SourceRow) -> list[str]:
    if source.kind == SourceKind.WEB:
        return list(WebScope.of(source).start_urls)
    return [source.location]


def _claim(session: Session, source_id: int) -> _Run:
    """Start a run of the source: take over the frontier of an interrupted or dead run, or seed a new one."""
    now = utcnow()
    source = session.scalar(select(SourceRow).where(SourceRow.id == source_id).with_for_update())
    if source is None:
        raise SourceNotFound(f"source {source_id} does not exist")
    latest = session.scalar(select(CrawlRunRow).where(CrawlRunRow.source_id == source_id)
                            .order_by(CrawlRunRow.id.desc()).limit(1).with_for_update())
    previous, crashed = None, False
    if latest is not None and latest.status == RunStatus.RUNNING:
        if _holds_lease(latest, now):
            raise SourceBusy(latest.id)
        latest.status, latest.finished_at = RunStatus.INTERRUPTED.value, now  # its worker died
        previous, crashed = latest, True
    elif latest is not None and latest.status != RunStatus.FINISHED and session.scalar(
            select(exists().where(CrawlFrontierRow.run_id == latest.id))):  # it stopped with work left
        previous, crashed = latest, latest.status == RunStatus.FAILED
    run = CrawlRunRow(source_id=source_id, status=RunStatus.RUNNING.value, owner=_owner(), started_at=now,
                      heartbeat_at=now, errors=[], fetched=0, new=0, updated=0, unchanged=0, failed=0, skipped=0,
                      resumed_from_id=previous.id if previous else None)
    session.add(run)
    session.flush()
    if previous is not None:
        session.execute(update(CrawlFrontierRow).where(CrawlFrontierRow.run_id == previous.id)
                        .values(run_id=run.id))
    else:
        session.add_all(CrawlFrontierRow(run_id=run.id, url_key=_key(url), url=url, depth=0,
                                         state=UnitState.PENDING.value, attempts=0)
                        for url in dict.fromkeys(_start_units(source)))
    session.flush()
    rows = session.scalars(select(CrawlFrontierRow).where(CrawlFrontierRow.run_id == run.id)
                           .order_by(CrawlFrontierRow.id)).all()
    claimed = _Run(source, run, rows)
    if crashed and claimed.queue:
        _count_attempt(session, claimed)
    claimed.fence(session)
    return claimed


def _count_attempt(session: Session, run: _Run) -> None:
    """The first pending unit was in flight when the previous run's worker died or the run failed: count it,
    and give it up after a few, so that a unit that crashes every run cannot stall the source for good."""
    unit = run.queue[0]
    row = session.get_one(CrawlFrontierRow, unit.id)
    row.attempts += 1
    if row.attempts >= MAX_UNIT_ATTEMPTS:
        row.state = UnitState.FAILED.value
        run.queue.popleft()
        run.add_error(unit.url, RuntimeError(f"この対象の処理中に実行が {row.attempts} 回止まったため、あきらめました"))


class _Crawler:
    def __init__(self, library: Library, run: _Run, fetcher: SafeFetcher, progress: Progress | None) -> None:
        self.library = library
        self.store = library.store
        self.run = run
        self.source = run.source
        self.fetcher = fetcher
        self.progress = progress
        self.upload = self.source.kind == SourceKind.UPLOAD
        # Uploads share one tag, so a record is found again whichever upload brings it (crawlers.uploads).
        self.tag = UPLOAD_TAG if self.upload else f"source:{self.source.id}"
        self.author = f"crawler:{self.source.id}"
        self.summary_text = f"{self.source.name} の取得（実行 {run.id}）"
        self.scope = WebScope.of(self.source) if self.source.kind == SourceKind.WEB else None
        self.stored_since_drain = 0

    # --- the run ---------------------------------------------------------------------------------------

    def crawl(self) -> CrawlSummary:
        handle = self._page if self.scope is not None else self._document
        try:
            while self.run.queue:
                handle(self.run.queue.popleft())
                self._drain_if_due()
                if self.progress:
                    self.progress(self.run.counts, len(self.run.queue))
            self.library.drain()  # before the run is marked finished: a finished run's records are searchable
            status = self._finish()
        except LeaseLost:
            log.warning("crawl run %s of source %s was taken over; this worker stops", self.run.id, self.source.id)
            return self.run.summary(RunStatus.INTERRUPTED)
        except BaseException as exc:
            self._abandon(exc)
            raise
        return self.run.summary(status)

    def _drain_if_due(self) -> None:
        """Index what was stored so far, every DRAIN_EVERY records: a long crawl becomes searchable as it
        goes, and no drain at the end of a run is long enough to outlast the run's lease."""
        if self.stored_since_drain >= DRAIN_EVERY:
            self.library.drain()
            self.stored_since_drain = 0

    def _finish(self) -> RunStatus:
        status = RunStatus.FAILED if self.run.counts.failed and not self.run.units_done else RunStatus.FINISHED
        with self.store.session() as session:
            self.run.fence(session, status=status.value, finished_at=utcnow())
            session.execute(delete(CrawlFrontierRow).where(CrawlFrontierRow.run_id == self.run.id))
        return status

    def _abandon(self, exc: BaseException) -> None:
        """Record why the run stopped; its frontier stays, so the next run resumes it."""
        stopped = not isinstance(exc, Exception)  # KeyboardInterrupt, SystemExit: stopped, not broken
        if not stopped:
            self.run.add_error(self.source.location, exc)
        status = RunStatus.INTERRUPTED if stopped else RunStatus.FAILED
        try:
            with self.store.session() as session:
                self.run.fence(session, status=status.value, finished_at=utcnow())
        except (SQLAlchemyError, LeaseLost):
            # The database is what failed, or the run is no longer ours: its lease ends on its own.
            log.exception("could not record the end of crawl run %s", self.run.id)

    # --- web pages -------------------------------------------------------------------------------------

    def _page(self, unit: _Unit) -> None:
        with self.store.session(readonly=True) as session:
            state = session.get(FetchStateRow, (self.source.id, unit.key))
        try:
            result = self.fetcher.fetch(unit.url, etag=state.etag if state else None,
                                        last_modified=state.last_modified if state else None)
        except RobotsDisallowed:
            return self._close_alone(unit, UnitState.SKIPPED)
        except FetchError as exc:
            self.run.add_error(unit.url, exc)
            return self._close_alone(unit, UnitState.FAILED)
        self.run.counts.fetched += 1
        if result.not_modified and state is not None:
            self.run.counts.unchanged += 1
            return self._close_alone(unit, UnitState.DONE, links=state.links or [],
                                     state=self._state(unit, result, content_key=state.content_key,
                                                       record_id=state.record_id, links=state.links,
                                                       **_charset_of(state)))
        if result.media_type not in HTML_TYPES or not self.scope.on_site(result.final_url):
            return self._close_alone(unit, UnitState.SKIPPED)  # a file, or a redirect off the site
        try:
            page = extract_html(result.content, url=result.final_url, content_type=result.content_type)
        except ParseError as exc:
            self.run.add_error(unit.url, exc)
            return self._close_alone(unit, UnitState.FAILED)
        links = [link for link in page.links if self.scope.follows(link, unit.depth + 1)]
        canonical = page.canonical_url if self.scope.on_site(page.canonical_url) else page.url
        draft = page_draft(page) | {"url": canonical, "fetched_at": utcnow().isoformat()}
        if len(canonical) <= MAX_EXTERNAL_ID:  # else the record is found by its URL, the same key
            draft["external_id"] = canonical
        record = self._record(draft)
        text_key = content_key(page.title, page.text)
        with self.store.session() as session:
            # The same text under another URL of the source (/ and /index.html, two encodings) is one record.
            record_id = session.scalar(select(FetchStateRow.record_id).where(
                FetchStateRow.source_id == self.source.id, FetchStateRow.content_key == text_key,
                FetchStateRow.url_key != unit.key).limit(1))
            if record_id is not None:
                self.run.counts.unchanged += 1
            else:
                record_id = self._ingest(session, record, unit.url)
            if record_id is None:  # the error is on the run; the page's links are still followed
                return self._close(session, unit, UnitState.FAILED, links=links)
            fetch_state = self._state(unit, result, content_key=text_key, record_id=record_id, links=links,
                                      encoding=page.encoding, encoding_source=page.encoding_source.value)
            return self._close(session, unit, UnitState.DONE, links=links, state=fetch_state)

    def _state(self, unit: _Unit, result: FetchResult, **fields: object) -> FetchStateRow:
        return FetchStateRow(source_id=self.source.id, url_key=unit.key, url=unit.url, etag=result.etag,
                             last_modified=result.last_modified, fetched_at=utcnow(), **fields)

    def _close_alone(self, unit: _Unit, outcome: UnitState, **changes: Any) -> None:
        with self.store.session() as session:
            self._close(session, unit, outcome, **changes)

    def _close(self, session: Session, unit: _Unit, outcome: UnitState, *, links: Iterable[str] = (),
               state: FetchStateRow | None = None) -> None:
        """Write a unit's end: its state, the links it adds, its fetch state and the run's counters."""
        if outcome is UnitState.SKIPPED:
            self.run.counts.skipped += 1
        elif outcome is UnitState.DONE:
            self.run.units_done += 1
        session.execute(update(CrawlFrontierRow).where(CrawlFrontierRow.id == unit.id)
                        .values(state=outcome.value))
        new_links = {}
        for link in links:
            key = _key(link)
            if key not in self.run.seen and len(self.run.seen) < self.scope.max_pages:
                self.run.seen.add(key)
                new_links[key] = link
        if new_links:
            # One INSERT for the page's new links; ids in link order are their place in breadth-first order.
            ids = session.scalars(
                insert(CrawlFrontierRow).returning(CrawlFrontierRow.id, sort_by_parameter_order=True),
                [{"run_id": self.run.id, "url_key": key, "url": link, "depth": unit.depth + 1,
                  "state": UnitState.PENDING.value, "attempts": 0} for key, link in new_links.items()],
            ).all()
            self.run.queue.extend(_Unit(row_id, key, link, unit.depth + 1)
                                  for row_id, (key, link) in zip(ids, new_links.items(), strict=True))
        if state is not None:
            session.merge(state)
        self.run.fence(session)

    # --- feeds, open data, uploads ---------------------------------------------------------------------

    def _document(self, unit: _Unit) -> None:
        try:
            drafts, result, charset = self._drafts(unit)
        except (FetchError, ParseError, OSError) as exc:
            self.run.add_error(self._label(unit), exc)
            return self._close_alone(unit, UnitState.FAILED)
        state = self._state(unit, result, **charset) if result is not None else None
        if drafts is None:  # 304: the feed or CSV did not change
            return self._close_alone(unit, UnitState.DONE, state=state)
        batches = list(_chunks(drafts, INGEST_BATCH)) or [[]]
        for number, batch in enumerate(batches, start=1):
            with self.store.session() as session:
                for draft in batch:
                    record = self._record(draft)
                    if self.upload and self._same_document_stored(session, record):
                        self.run.counts.unchanged += 1
                        continue
                    self._ingest(session, record, self._label(unit))
                if number < len(batches):
                    self.run.fence(session)
                else:
                    self._close(session, unit, UnitState.DONE, state=state)
            if number < len(batches):
                self._drain_if_due()
        return None

    def _drafts(
        self, unit: _Unit
    ) -> tuple[list[dict[str, Any]] | None, FetchResult | None, dict[str, str | None]]:
        """The drafts of the unit's document, the fetch that brought it (None: a file), and how it was decoded
        (the FetchStateRow fields).

        Drafts are None when a conditional GET says the document did not change.
        """
        kind = self.source.kind
        result = None
        if "://" in unit.url:
            with self.store.session(readonly=True) as session:
                state = session.get(FetchStateRow, (self.source.id, unit.key))
            result = self.fetcher.fetch(unit.url, etag=state.etag if state else None,
                                        last_modified=state.last_modified if state else None)
            self.run.counts.fetched += 1
            if result.not_modified and state is not None:
                self.run.counts.unchanged += 1
                return None, result, _charset_of(state)
            content = result.content
        else:
            content = self._read_file(Path(unit.url))
            self.run.counts.fetched += 1
        charset: dict[str, str | None] = {}
        if kind == SourceKind.FEED:
            drafts = []
            feed = parse_feed(content, url=unit.url, content_type=result.content_type if result else None)
            charset = {"encoding": feed.encoding, "encoding_source": feed.encoding_source.value}
            for entry in feed.entries:
                try:
                    drafts.append(feed_entry_draft(entry))
                except ParseError as exc:  # one entry without a link; the others are read
                    self.run.add_error(unit.url, exc)
        elif kind == SourceKind.OPENDATA:
            parsed = parse_opendata_csv(content, dataset=self.source.options.get("dataset"),
                                        organizer=self.source.organization or self.source.name)
            for row_error in parsed.errors:
                self.run.add_error(unit.url, ParseError(str(row_error)))
            drafts = parsed.drafts
            charset = {"encoding": parsed.encoding, "encoding_source": parsed.encoding_source.value}
        else:
            drafts = self._upload_drafts(content)
        return drafts, result, charset

    def _upload_drafts(self, content: bytes) -> list[dict[str, Any]]:
        """An uploaded file's drafts under the upload policy (crawlers.uploads); each record left out is an
        error on the run, named by the file's display name and its line."""
        options = self.source.options
        kind = options.get("kind") or "page"
        public_url = options.get("public_url")

        def own_url(document_key: str) -> str | None:
            return own_copy_url(public_url, kind, document_key) if public_url else None

        # The stored file's extension is its checked type; a file source added by path keeps its own name.
        name = f"upload.{options['type']}" if options.get("type") else Path(self.source.location).name
        parsed = parse_upload(name, content, url=options.get("url"), kind=kind,
                              organizer=self.source.organization or self.source.name, fallback_url=own_url)
        for problem in parsed.errors:
            self.run.add_error(self.source.name, ParseError(problem))
        # A document at its own copy is keyed by its text, not its bytes: the same document uploaded in
        # another encoding (or re-saved) is the same record.
        own = own_url(parsed.document_key) if parsed.document_key else None
        for draft in parsed.drafts:
            if own is not None and draft.get("url") == own:
                draft["external_id"] = own_copy_key(parsed.document_key)  # own_copy_url's record id comes from it
        return parsed.drafts

    @staticmethod
    def _same_document_stored(session: Session, record: dict[str, Any]) -> bool:
        """Is this own-copy document stored already, with the same text up to the codecs' variants (～ for 〜)?
        Then it is the same document in another encoding: no revision that only swaps those characters."""
        key = record.get("external_id") or ""
        if not key.startswith(OWN_COPY_KEY_PREFIX):
            return False
        stored = session.scalar(select(RecordRow).where(RecordRow.source == record["source"],
                                                        RecordRow.external_id == key))
        return (stored is not None and stored.status == "published"
                and content_key(stored.data.get("title", ""), stored.data.get("body", ""))
                == content_key(record.get("title", ""), record.get("body", "")))

    def _label(self, unit: _Unit) -> str:
        """How errors name the unit: an upload by the name it was uploaded under, never its stored path."""
        return self.source.name if self.upload else unit.url

    def _read_file(self, path: Path) -> bytes:
        cap = self.fetcher.policy.size_cap(mimetypes.guess_type(path.name)[0])
        with path.open("rb") as handle:
            content = handle.read(cap + 1)
        if len(content) > cap:
            raise ParseError(f"ファイルが大きすぎます（上限 {cap} バイト）: {path.name}")
        return content

    # --- the item pipeline -----------------------------------------------------------------------------

    def _record(self, draft: dict[str, Any]) -> dict[str, Any]:
        """A draft with what the source vouches for, and a key to find it again: the draft's external id, else
        its URL; without either, its content, so re-reading the same document never duplicates records.

        An ``id`` in the draft (an uploaded JSON record may carry one) is dropped: a file must not be able to
        overwrite whichever record has that id.
        """
        record = {key: value for key, value in draft.items() if key != "id"}
        record |= {"source": self.tag, "provenance": self.source.provenance}
        if self.source.organization:
            record["organization"] = self.source.organization
        if not record.get("external_id") and not record.get("url"):
            record["external_id"] = "sha256:" + content_hash_of(draft)
        return record

    def _ingest(self, session: Session, record: dict[str, Any], unit: str) -> str | None:
        """Ingest one record in a savepoint: a bad record is an error on the run, not the end of the unit."""
        try:
            with session.begin_nested():
                outcome = ingest_record(session, record, author=self.author, summary=self.summary_text)
        except (RecordValidationError, IngestConflict) as exc:
            self.run.add_error(record.get("url") or unit, exc)
            return None
        self.run.counts.count(outcome)
        if outcome.action != "unchanged":
            self.stored_since_drain += 1
        return outcome.record_id


def crawl(library: Library, source_id: int, *, fetcher: SafeFetcher | None = None,
          progress: Progress | None = None) -> CrawlSummary:
    """Run (or resume) a crawl of one source. Raises SourceNotFound, or SourceBusy when a run is alive."""
    with library.store.session() as session:
        run = _claim(session, source_id)
    crawler = _Crawler(library, run, fetcher or SafeFetcher(FetchPolicy.from_env()), progress)
    return crawler.crawl()


def enabled_source_ids(library: Library) -> list[int]:
    """The sources `library crawl --all` reads: enabled ones, uploads aside (a file is read when it is
    uploaded; reading every uploaded file again would change nothing)."""
    with library.store.session(readonly=True) as session:
        return list(session.scalars(select(SourceRow.id).where(
            SourceRow.enabled, SourceRow.kind != SourceKind.UPLOAD.value).order_by(SourceRow.id)))
