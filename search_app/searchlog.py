"""The search log: every search's text, filters, hit count and latency, for the zero-result report.

Never who asked: no IP address, user id, session or user agent reaches `SearchLogRow` (T08). Query text is kept
NFKC-folded (so ＡＥＤ and AED count as one query), with e-mail addresses and phone numbers masked: people sometimes
type them into a search box, and the report does not need them.

Logging is best-effort and off the critical path. A commit costs an fsync (about 4 ms on the CI disk with SQLite's
synchronous=FULL) and takes SQLite's single write lock, so rows are buffered per process and written in batches;
a failed write is logged and dropped, never raised into a search. Up to one batch (at most `SEARCH_LOG_MAX_AGE`
seconds of searches) can be lost when a worker stops. A batch is one executemany INSERT, without ORM objects.

Queries that found something for many searches are also offered as suggestions while typing (`frequent_completions`):
only those seen at least `FREQUENT_MIN_TIMES` times, so a query that few people typed, which may be one person's
name or circumstances, is never shown to anyone else. Each process reads them at most once every
`FREQUENT_REFRESH_SECONDS` (`FrequentQueries`), not once per keystroke.

Rows older than the retention period (`LIBRARY_SEARCH_LOG_RETENTION_DAYS`, 90 days by default) are deleted by
beat's daily `library.purge_search_log` task; as a safety net for installations that run no beat, each process
also deletes up to one batch of them after its first write of the day (indexer.store.searchlog).
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jaconv
from flask import Flask, current_app, has_app_context
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from indexer.analysis.analyzer import is_kana
from indexer.analysis.normalize import folded_text
from indexer.config import ConfigError
from indexer.library import Library
from indexer.search import Query, Results
from indexer.store import SearchLogRow
from indexer.store.models import utcnow
from indexer.store.searchlog import PURGE_BATCH, purge_search_log, write_search_log

DEFAULT_BATCH = 50
DEFAULT_MAX_AGE = 5.0
PURGE_EVERY = 24 * 3600.0  # seconds between a process's opportunistic purges

# After NFKC, so full-width input is caught too. Japanese phone numbers start with 0 and have 10 or 11 digits;
# JAN codes (8 or 13 digits, typed to look up a product) must stay readable, so digit runs are not masked wholesale.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<!\d)\(?0\d{1,4}[-)]?\d{1,4}-?\d{3,4}(?!\d)")
EMAIL_MASK = "〔メールアドレス〕"
PHONE_MASK = "〔電話番号〕"


def _is_phone(match: re.Match[str]) -> bool:
    return len(re.sub(r"\D", "", match.group())) in (10, 11)


def mask_personal_data(text: str) -> str:
    text = _EMAIL.sub(EMAIL_MASK, unicodedata.normalize("NFKC", text))
    return _PHONE.sub(lambda m: PHONE_MASK if _is_phone(m) else m.group(), text)


def _filters(query: Query) -> dict[str, Any]:
    filters: dict[str, Any] = {
        name: list(getattr(query, name))
        for name in ("kind", "category", "organization", "region", "provenance", "year")
        if getattr(query, name)
    }
    if query.date_from:
        filters["from"] = query.date_from.isoformat()
    if query.date_to:
        filters["to"] = query.date_to.isoformat()
    return filters


class SearchLogBuffer:
    """Rows waiting to be written; one per app (in `app.extensions`), shared by its threads."""

    def __init__(self, batch: int, max_age: float) -> None:
        self.batch = batch
        self.max_age = max_age
        self._rows: list[dict[str, Any]] = []
        self._oldest = 0.0
        self._lock = threading.Lock()
        self._next_purge = 0.0  # monotonic time; the first write of a process purges

    def add(self, library: Library, row: dict[str, Any]) -> None:
        with self._lock:
            if not self._rows:
                self._oldest = time.monotonic()
            self._rows.append(row)
            due = len(self._rows) >= self.batch or time.monotonic() - self._oldest >= self.max_age
        if due:
            self.flush(library)

    def flush(self, library: Library) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            write_search_log(library.store, rows)
        except SQLAlchemyError:
            current_app.logger.warning("search log: %d rows could not be written", len(rows), exc_info=True)
            return
        if time.monotonic() >= self._next_purge:
            self._purge(library)

    def _purge(self, library: Library) -> None:
        """At most one batch of expired rows, so that a request never waits for a large backlog."""
        self._next_purge = time.monotonic() + PURGE_EVERY
        try:
            if purge_search_log(library.store, max_batches=1) >= PURGE_BATCH:
                self._next_purge = 0.0  # more may be left: another batch after the next write
        except (SQLAlchemyError, ConfigError):
            current_app.logger.warning("search log: old rows could not be purged", exc_info=True)


def _buffer(app: Flask) -> SearchLogBuffer:
    buffer = app.extensions.get("search_log")
    if buffer is None:
        # dict.setdefault is atomic: threads racing on the first search share one buffer.
        buffer = app.extensions.setdefault(
            "search_log",
            SearchLogBuffer(
                int(app.config.get("SEARCH_LOG_BATCH", DEFAULT_BATCH)),
                float(app.config.get("SEARCH_LOG_MAX_AGE", DEFAULT_MAX_AGE)),
            ),
        )
    return buffer


def log_search(library: Library, query: Query, results: Results) -> None:
    """Record one search (in the current app's buffer); does nothing when `SEARCH_LOG` is False."""
    if not current_app.config.get("SEARCH_LOG", True):
        return
    row = {
        "at": utcnow(),
        "query": mask_personal_data(query.text.strip()),
        "filters": _filters(query),
        "total": results.total,
        "took_ms": round(results.took_ms, 2),
        "relaxed": results.relaxed,
    }
    _buffer(current_app).add(library, row)


def flush_search_log(library: Library) -> None:
    """Write this process's buffered rows now (the report calls it, so it includes the latest searches)."""
    if has_app_context() and "search_log" in current_app.extensions:
        current_app.extensions["search_log"].flush(library)


def zero_result_queries(
    library: Library, limit: int = 50, since: datetime | None = None
) -> list[tuple[str, int]]:
    """The most frequent non-empty queries that found nothing, as (query, times), most frequent first."""
    flush_search_log(library)
    return _query_counts(library, [SearchLogRow.total == 0], 1, since, limit)


def _query_counts(
    library: Library, conditions: list[Any], min_times: int, since: datetime | None, limit: int
) -> list[tuple[str, int]]:
    """(query, times) of the non-empty logged queries that meet `conditions` at least `min_times` times since
    `since`, most frequent first."""
    times = func.count()
    statement = (
        select(SearchLogRow.query, times.label("times"))
        .where(*conditions, SearchLogRow.query != "")
        .group_by(SearchLogRow.query)
        .having(times >= min_times)
        .order_by(times.desc(), SearchLogRow.query)
        .limit(limit)
    )
    if since is not None:
        statement = statement.where(SearchLogRow.at >= since)
    with library.store.session(readonly=True) as session:
        return [(query, count) for query, count in session.execute(statement)]


# --- frequent successful queries, as suggestions --------------------------------------------------------------

FREQUENT_MIN_TIMES = 3  # privacy: fewer searches could all be one person's
FREQUENT_DAYS = 30  # what people look for now, not a season ago
FREQUENT_REFRESH_SECONDS = 60.0
FREQUENT_LIMIT = 2000  # the most frequent ones: a short list in each process's memory
FREQUENT_MAX_CHARS = 64  # longer text reads like a sentence about someone, not a search


def frequent_queries(
    library: Library,
    min_times: int = FREQUENT_MIN_TIMES,
    since: datetime | None = None,
    limit: int = FREQUENT_LIMIT,
) -> list[tuple[str, int]]:
    """Non-empty queries that found something (not only by relaxing to any word) at least `min_times` times, as
    (query, times), most frequent first. Never fewer than FREQUENT_MIN_TIMES, whatever the caller asks."""
    found = [SearchLogRow.total > 0, SearchLogRow.relaxed.is_(False)]
    return _query_counts(library, found, max(min_times, FREQUENT_MIN_TIMES), since, limit)


@dataclass(frozen=True, slots=True)
class FrequentQuery:
    text: str  # as logged, and as suggested
    folded: str
    reading: str  # in katakana, without spaces: kana input matches it (ぼうさい → 防災訓練)


def _suggestible(text: str) -> bool:
    return len(text) <= FREQUENT_MAX_CHARS and EMAIL_MASK not in text and PHONE_MASK not in text


def load_frequent_queries(
    library: Library, known: dict[str, FrequentQuery] | None = None
) -> list[FrequentQuery]:
    """The suggestible frequent queries of the last FREQUENT_DAYS; `known` ones are reused, not analysed again."""
    known = known or {}
    queries = []
    for text, _ in frequent_queries(library, since=utcnow() - timedelta(days=FREQUENT_DAYS)):
        if _suggestible(text):
            queries.append(
                known.get(text) or FrequentQuery(text, folded_text(text), "".join(library.analyzer.analyze(text).r))
            )
    return queries


class FrequentQueries:
    """The frequent successful queries of one library, re-read at most every `seconds`; one per app (in
    `app.extensions`), shared by its threads. While one thread re-reads, the others keep using the old list."""

    def __init__(self, seconds: float = FREQUENT_REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._entry: tuple[float, list[FrequentQuery]] | None = None
        self._lock = threading.Lock()
        self.loads = 0  # how often the log was read (tests read it)

    def queries(self, library: Library) -> list[FrequentQuery]:
        now, entry = self._clock(), self._entry
        if entry is not None and now - entry[0] < self.seconds:
            return entry[1]
        if entry is not None and not self._lock.acquire(blocking=False):
            return entry[1]  # another thread is re-reading
        if entry is None:
            self._lock.acquire()
        try:
            entry = self._entry
            if entry is not None and now - entry[0] < self.seconds:
                return entry[1]  # filled while this thread waited
            previous = entry[1] if entry else []
            try:
                queries = load_frequent_queries(library, {query.text: query for query in previous})
            except SQLAlchemyError:
                # Suggestions from the titles still work; the log is tried again after `seconds`.
                current_app.logger.warning("search log: frequent queries could not be read", exc_info=True)
                queries = previous
            self._entry = (now, queries)
            self.loads += 1
            return queries
        finally:
            self._lock.release()


def _frequent(app: Flask) -> FrequentQueries:
    cache = app.extensions.get("frequent_queries")
    if cache is None:
        cache = app.extensions.setdefault("frequent_queries", FrequentQueries())  # atomic: threads share one
    return cache


def frequent_completions(library: Library, text: str, limit: int) -> list[str]:
    """Up to `limit` frequent successful queries that start with the typed text (after folding), or whose
    reading starts with it when it is kana; most frequent first. Not the text itself: it is already typed."""
    typed = folded_text(text)
    if not typed or limit <= 0:
        return []
    prefix = typed + " " if text[-1:].isspace() else typed  # "防災 " asks for a next word
    compact = typed.replace(" ", "")
    reading = jaconv.hira2kata(compact) if is_kana(compact) else None
    if has_app_context() and current_app.extensions.get("library") is library:
        queries = _frequent(current_app).queries(library)
    else:
        queries = load_frequent_queries(library)  # scripts and tests outside this app: read afresh
    found = []
    for query in queries:
        if query.folded == typed:
            continue
        if query.folded.startswith(prefix) or (reading is not None and query.reading.startswith(reading)):
            found.append(query.text)
            if len(found) == limit:
                break
    return found
