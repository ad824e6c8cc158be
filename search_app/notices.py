"""Urgent notices: which are active now, and which of them a search pins above its results.

They are read from the SQL store rather than the engine: `urgent` and `valid_until` are not indexed, urgent
notices are few, and the store is the system of record, so a notice stops being pinned the moment it expires or is
retracted, whatever the index says.

A notice is pinned when the query names it or what it is about:

- any query word is a word of its maker or product (サンプル電機, ポケットチャージ; kana by reading), or a whole
  query word is part of a model number, JAN code or lot number (pb10k in SB-PB10K-W);
- every query word occurs in its title or category labels (リコール, 回収, モバイルバッテリー 発熱);
- the filters ask for notices, or for one of its categories (or their parent category).

Maker and product words pin on their own because they identify the product; title words must all match, because
a title also holds everyday words (お知らせ, 回収) that alone say little.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from indexer.analysis import Analyzer, FieldTokens, QueryTerm
from indexer.library import Library
from indexer.query import parse_query
from indexer.search import Query, compile_query
from indexer.store import RecordRow
from schemas import category_label, category_parent, is_category

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
# Shorter words (一, k, 10) occur in too many names and model numbers to single out a notice.
MIN_WORD_CHARS = 2
MIN_CODE_CHARS = 4
CODE_FIELDS = ("model_numbers", "jan_codes", "lot_numbers")


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _is_active(data: dict[str, Any], now: datetime) -> bool:
    valid_until = _when(data.get("valid_until"))
    return valid_until is None or valid_until > now


def active_urgent_notices(library: Library, now: datetime | None = None) -> list[dict[str, Any]]:
    """Published urgent notices that have not expired: most severe first, then newest first."""
    now = now or datetime.now(UTC)
    with library.store.session(readonly=True) as session:
        rows = session.scalars(
            select(RecordRow.data).where(
                RecordRow.kind == "notice",
                RecordRow.status == "published",
                RecordRow.data["urgent"].as_boolean().is_(True),
            )
        ).all()
    notices = [dict(data) for data in rows if _is_active(data, now)]
    notices.sort(key=_display_order)
    return notices


def _display_order(data: dict[str, Any]) -> tuple[int, float]:
    severity = SEVERITY_ORDER.get(str(data.get("severity")), SEVERITY_ORDER["medium"])
    published = _when(data.get("published_at"))
    return severity, -(published.timestamp() if published else 0)


def pinned_notices(library: Library, query: Query, now: datetime | None = None) -> list[dict[str, Any]]:
    """The active urgent notices this query should show first (see the module docstring)."""
    notices = active_urgent_notices(library, now)
    if not notices:
        return []
    if "notice" in query.kind:
        return notices
    analyzer = library.analyzer
    parsed = parse_query(query.text)
    terms = compile_query(parsed, analyzer)[2] if parsed.groups else []
    words = [analyzer.normalize(term.text).text.lower() for group in parsed.groups for term in group]
    return [
        notice
        for notice in notices
        if _in_filtered_categories(notice, query.category) or _named_by(notice, terms, words, analyzer)
    ]


def _in_filtered_categories(notice: dict[str, Any], wanted: Iterable[str]) -> bool:
    wanted = set(wanted)
    for category in notice.get("categories") or ():
        if category in wanted or (is_category(category) and category_parent(category) in wanted):
            return True
    return False


def _named_by(notice: dict[str, Any], terms: list[QueryTerm], words: list[str], analyzer: Analyzer) -> bool:
    if not terms:
        return False
    codes = [analyzer.normalize(code).text.lower() for name in CODE_FIELDS for code in notice.get(name) or ()]
    if any(len(word) >= MIN_CODE_CHARS and word in code for word in words for code in codes):
        return True
    identifying = [analyzer.analyze(notice.get(name) or "") for name in ("maker", "product")]
    if any(
        _matches(term, tokens)
        for term in terms
        if len(term.surface) >= MIN_WORD_CHARS and not term.surface.isdigit()
        for tokens in identifying
    ):
        return True
    labels = [category_label(c) for c in notice.get("categories") or () if is_category(c)]
    described = analyzer.analyze("\n".join([notice.get("title") or "", *labels]))
    return all(_matches(term, described) for term in terms)


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
