"""Urgent notices: which are active now, and which of them a search pins above its results.

They are read from the SQL store rather than the engine: `urgent` and `valid_until` are not indexed, urgent
notices are few, and the store is the system of record, so a notice stops being pinned the moment it expires or is
retracted, whatever the index says.

A notice is pinned when the query names it or what it is about:

- any query word is a word of its maker or product (サンプル電機, ポケットチャージ; kana by reading), or a whole
  query word is part of a model number, JAN code or lot number (pb10k in SB-PB10K-W);
- every query word occurs in its title or category labels (リコール, 回収, モバイルバッテリー 発熱);
- the filters ask for notices, or for one of its categories (or their parent category), or name its maker or
  organization as the organization filter (the facet's value, compared after the analyzer's NFKC folding).

Maker and product words pin on their own because they identify the product; title words must all match, because
a title also holds everyday words (お知らせ, 回収) that alone say little.

Every search asks for the pinned notices, so each process keeps the urgent notices with their fields already
analysed (`NoticeCache`, in `app.extensions`) and re-reads them only when a cheap fingerprint of the notice rows
changes: their count, latest update and sum of revisions. Every change to a record appends a revision and rows are
never deleted, so any edit, retraction or new notice changes the sum. Expiry is a matter of time, not of rows, so
`valid_until` is compared with the time of each request, never with the time the cache was filled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import func, select

from indexer.analysis import Analyzer, FieldTokens, QueryTerm
from indexer.analysis.normalize import folded_text
from indexer.library import Library
from indexer.query import ParsedQuery, parse_query
from indexer.search import Query, compile_query
from indexer.store import RecordRow
from schemas import category_label, category_parent, is_category

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
# Shorter words (一, k, 10) occur in too many names and model numbers to single out a notice.
# A notice pushed by another process is pinned within this many seconds (T29 allows 5).
FINGERPRINT_INTERVAL = 1.0
NAMED_MEMO_SIZE = 4096  # queries whose named notices are remembered; all forgotten at once past it
MIN_WORD_CHARS = 2
MIN_CODE_CHARS = 4
CODE_FIELDS = ("model_numbers", "jan_codes", "lot_numbers")

# Served by the index on `kind`; one row of three numbers whatever the number of notices.
_FINGERPRINT = select(
    func.count(), func.max(RecordRow.updated_at), func.coalesce(func.sum(RecordRow.revision), 0)
).where(RecordRow.kind == "notice")
_URGENT = select(RecordRow.data).where(
    RecordRow.kind == "notice",
    RecordRow.status == "published",
    RecordRow.data["urgent"].as_boolean().is_(True),
)


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class UrgentNotice:
    """One urgent notice as read from the store, with what matching a query needs already analysed."""

    data: dict[str, Any]
    valid_until: datetime | None
    codes: tuple[str, ...]  # model numbers, JAN codes and lot numbers, normalized and lowercase
    identifying: tuple[FieldTokens, ...]  # maker, product
    described: FieldTokens  # title and category labels
    categories: frozenset[str]  # its categories and their parents
    names: frozenset[str]  # maker and organization, as `folded_text` gives them

    @classmethod
    def of(cls, data: dict[str, Any], analyzer: Analyzer) -> UrgentNotice:
        categories = [c for c in data.get("categories") or () if isinstance(c, str)]
        labels = [category_label(c) for c in categories if is_category(c)]
        parents = {parent for c in categories if is_category(c) and (parent := category_parent(c))}
        return cls(
            data=data,
            valid_until=_when(data.get("valid_until")),
            codes=tuple(
                analyzer.normalize(code).text.lower() for name in CODE_FIELDS for code in data.get(name) or ()
            ),
            identifying=tuple(analyzer.analyze(data.get(name) or "") for name in ("maker", "product")),
            described=analyzer.analyze("\n".join([data.get("title") or "", *labels])),
            categories=frozenset(categories) | parents,
            names=frozenset(
                folded_text(name) for name in (data.get("maker"), data.get("organization")) if name
            ),
        )

    def active(self, now: datetime) -> bool:
        return self.valid_until is None or self.valid_until > now


def _display_order(notice: UrgentNotice) -> tuple[int, float]:
    severity = SEVERITY_ORDER.get(str(notice.data.get("severity")), SEVERITY_ORDER["medium"])
    published = _when(notice.data.get("published_at"))
    return severity, -(published.timestamp() if published else 0)


def load_urgent_notices(library: Library) -> list[UrgentNotice]:
    """Published urgent notices, expired or not, most severe first, then newest first."""
    with library.store.session(readonly=True) as session:
        rows = session.scalars(_URGENT).all()
    notices = [UrgentNotice.of(dict(data), library.analyzer) for data in rows]
    notices.sort(key=_display_order)
    return notices


class NoticeCache:
    """The urgent notices of one library, analysed once per change of the notice rows (module docstring).

    One per app, shared by its threads: a reader takes the current (fingerprint, notices) pair in one attribute
    read, and a reload replaces it whole.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entry: tuple[tuple[Any, ...], list[UrgentNotice]] | None = None
        self._lock = threading.Lock()
        self.loads = 0  # how often the notices were read and analysed (tests and benchmarks read it)
        self._clock = clock
        # (when, this process's change counter, fingerprint): the fingerprint query runs at most once per
        # FINGERPRINT_INTERVAL, or at once after this process indexed a change.
        self._checked: tuple[float, int, tuple[Any, ...]] | None = None
        # (the notice list, query key -> the notices of it that query names): see pinned_notices.
        self._named: tuple[list[UrgentNotice], dict[Hashable, list[UrgentNotice]]] | None = None

    def _current_fingerprint(self, library: Library) -> tuple[Any, ...]:
        now, checked = self._clock(), self._checked
        if checked is not None and checked[1] == library.changes and now - checked[0] < FINGERPRINT_INTERVAL:
            return checked[2]
        fingerprint = self._fingerprint(library)
        self._checked = (now, library.changes, fingerprint)
        return fingerprint

    def notices(self, library: Library) -> list[UrgentNotice]:
        fingerprint = self._current_fingerprint(library)
        entry = self._entry
        if entry is not None and entry[0] == fingerprint:
            return entry[1]
        with self._lock:
            entry = self._entry
            if entry is not None and entry[0] == fingerprint:
                return entry[1]  # another thread has just loaded them
            # The fingerprint was read before the rows: a change in between makes the next request reload,
            # rather than leaving old rows under the new fingerprint.
            notices = load_urgent_notices(library)
            self._entry = (fingerprint, notices)
            self.loads += 1
            return notices

    def named(
        self, notices: list[UrgentNotice], key: Hashable, find: Callable[[], list[UrgentNotice]]
    ) -> list[UrgentNotice]:
        """`find()`'s notices for `key`, remembered for as long as `notices` is the current list."""
        memo = self._named
        if memo is None or memo[0] is not notices:  # a reload: what was found in the old list is gone with it
            memo = (notices, {})
            self._named = memo
        found = memo[1].get(key)
        if found is None:
            if len(memo[1]) >= NAMED_MEMO_SIZE:
                memo[1].clear()
            found = memo[1][key] = find()
        return found

    @staticmethod
    def _fingerprint(library: Library) -> tuple[Any, ...]:
        with library.store.session(readonly=True) as session:
            return tuple(session.execute(_FINGERPRINT).one())


def _notice_cache(library: Library) -> NoticeCache | None:
    """The app's cache when this library is the current app's; None otherwise (scripts, tests)."""
    if has_app_context() and current_app.extensions.get("library") is library:
        cache = current_app.extensions.get("notices")
        if cache is None:
            cache = current_app.extensions.setdefault("notices", NoticeCache())  # atomic: threads share one
        return cache
    return None


def _urgent_notices(library: Library, cache: NoticeCache | None) -> list[UrgentNotice]:
    """From the app's cache when there is one; read afresh otherwise."""
    return cache.notices(library) if cache is not None else load_urgent_notices(library)


def _active(library: Library, now: datetime | None) -> list[UrgentNotice]:
    now = now or datetime.now(UTC)
    return [notice for notice in _urgent_notices(library, _notice_cache(library)) if notice.active(now)]


def active_urgent_notices(library: Library, now: datetime | None = None) -> list[dict[str, Any]]:
    """Published urgent notices that have not expired: most severe first, then newest first."""
    return [dict(notice.data) for notice in _active(library, now)]


def pinned_notices(
    library: Library,
    query: Query,
    now: datetime | None = None,
    terms: Sequence[QueryTerm] | None = None,
) -> list[dict[str, Any]]:
    """The active urgent notices this query should show first (see the module docstring). `terms`: the query's
    analysed terms when the caller has them (`Results.terms`), so a search is not analysed twice."""
    # Words (analysed terms, if the caller has them: a query of none names nothing by its words), a category, a
    # maker or the notice kind: without any of them, no notice is read.
    has_words = bool(terms) if terms is not None else bool(parse_query(query.text).groups)
    if not (has_words or query.category or query.organization or "notice" in query.kind):
        return []
    now = now or datetime.now(UTC)
    cache = _notice_cache(library)
    notices = _urgent_notices(library, cache)
    if not any(notice.active(now) for notice in notices):
        return []

    def named() -> list[UrgentNotice]:
        if "notice" in query.kind:
            return notices
        if terms is None:
            query_terms, words = _query_words(library.analyzer, query.text)
        else:
            query_terms, words = terms, _words(library.analyzer, parse_query(query.text))
        wanted = set(query.category)
        makers = {folded_text(name) for name in query.organization}
        return [
            notice
            for notice in notices
            if not wanted.isdisjoint(notice.categories)
            or not makers.isdisjoint(notice.names)
            or _named_by(notice, query_terms, words)
        ]

    # Which notices a query names depends on the notices and the query alone, and the same searches repeat:
    # it is worked out once per query and notice rows; whether a notice has expired, at every request.
    key = (query.text, query.category, query.organization, "notice" in query.kind)
    chosen = cache.named(notices, key, named) if cache is not None else named()
    return [dict(notice.data) for notice in chosen if notice.active(now)]


@lru_cache(maxsize=1024)
def _query_words(analyzer: Analyzer, text: str) -> tuple[list[QueryTerm], list[str]]:
    """The query's analysed terms and normalized words, once per distinct text (the same searches repeat)."""
    parsed = parse_query(text)
    terms = compile_query(parsed, analyzer)[2] if parsed.groups else []
    return terms, _words(analyzer, parsed)


def _words(analyzer: Analyzer, parsed: ParsedQuery) -> list[str]:
    return [analyzer.normalize(term.text).text.lower() for group in parsed.groups for term in group]


def _named_by(notice: UrgentNotice, terms: Sequence[QueryTerm], words: list[str]) -> bool:
    if not terms:
        return False
    if any(len(word) >= MIN_CODE_CHARS and word in code for word in words for code in notice.codes):
        return True
    if any(
        _matches(term, tokens)
        for term in terms
        if len(term.surface) >= MIN_WORD_CHARS and not term.surface.isdigit()
        for tokens in notice.identifying
    ):
        return True
    return all(_matches(term, notice.described) for term in terms)


def _matches(term: QueryTerm, tokens: FieldTokens) -> bool:
    """A whole word of the field, by normalized form or sub-word; a kana word also by reading."""
    if _has_run(tokens.c, term.c) or _has_run(tokens.a, term.a):
        return True
    reading = "".join(term.r)
    return term.kana and len(reading) > MIN_WORD_CHARS and reading in "".join(tokens.r)


def _has_run(stream: list[str], pattern: tuple[str, ...]) -> bool:
    """`pattern` occurs as consecutive tokens of `stream`."""
    size = len(pattern)
    if not size:
        return False
    return any(
        tuple(stream[i : i + size]) == pattern for i, token in enumerate(stream) if token == pattern[0]
    )
