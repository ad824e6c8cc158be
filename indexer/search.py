"""`search(Query) -> Results`: user syntax → analysed clauses → engine → escaped, highlighted hits."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from indexer.analysis import Analyzer, QueryTerm, make_snippet
from indexer.engines.base import (
    FACET_FIELDS,
    SORT_ORDERS,
    EngineError,
    EngineHit,
    EngineQuery,
    FieldMatch,
    Filters,
    SearchEngine,
    SortOrder,
    TermClause,
)
from indexer.query import MAX_TERMS, ParsedQuery, Term, parse_query
from schemas import KIND_LABELS, PROVENANCE_LABELS, category_label, is_category

MAX_PAGE_SIZE = 100
MAX_PAGE = 1000  # deep pages cost the engine more than any reader needs
MAX_FILTER_VALUES = 20
SNIPPET_CHARS = 120

# Where a match counts most: the title, then maker/product/organizer-style fields, then the body.
GROUP_BOOSTS = {"title": 3.0, "meta": 2.0, "body": 1.0}
# Exact normalized word > sub-word > reading (kana queries only) > character bigrams.
FORM_BOOSTS = {"c": 1.0, "a": 0.7, "r": 0.5, "b": 0.3}
REGEX_META = set(r"\.+*?()|[]{}^$#&-~")


class QueryError(ValueError):
    """A query parameter is out of range; the message is Japanese and safe to show."""


@dataclass(frozen=True, slots=True)
class Query:
    text: str = ""
    kind: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    organization: tuple[str, ...] = ()
    region: tuple[str, ...] = ()
    provenance: tuple[str, ...] = ()
    year: tuple[str, ...] = ()
    date_from: datetime | None = None
    date_to: datetime | None = None
    sort: SortOrder = "relevance"
    page: int = 1
    size: int = 10

    def validate(self) -> None:
        if self.sort not in SORT_ORDERS:
            raise QueryError(f"並び順 {self.sort!r} は使えません（{', '.join(SORT_ORDERS)} のいずれか）")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise QueryError(f"件数は 1〜{MAX_PAGE_SIZE} で指定してください")
        if not 1 <= self.page <= MAX_PAGE:
            raise QueryError(f"ページは 1〜{MAX_PAGE} で指定してください")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise QueryError("期間の開始が終了より後になっています")
        for name in ("kind", "category", "organization", "region", "provenance", "year"):
            if len(getattr(self, name)) > MAX_FILTER_VALUES:
                raise QueryError(f"絞り込み条件が多すぎます（{MAX_FILTER_VALUES} 件まで）")


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: str
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    kind: str
    title: str
    url: str | None
    snippet: str  # HTML-escaped, with <mark> around matches
    score: float
    provenance: str
    organization: str | None
    region: str | None
    categories: tuple[str, ...]
    published_at: datetime | None
    event_at: datetime | None
    verified_at: datetime | None
    details: dict[str, str]
    terms: tuple[QueryTerm, ...] = field(default=(), repr=False, compare=False)  # for title_html
    _title_html: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def title_html(self) -> str:
        """The HTML-escaped title with <mark> around matches; made when first asked for, as the JSON API
        never shows it (half of a search's snippet work)."""
        if self._title_html is None:
            marked = make_snippet(self.title, self.terms, max_chars=None)  # the whole title, never cut
            object.__setattr__(self, "_title_html", marked)  # a cache, not a change of value
        return self._title_html  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Results:
    query: Query
    total: int
    took_ms: float
    hits: list[Hit]
    facets: dict[str, list[FacetValue]] = field(default_factory=dict)
    relaxed: bool = False  # no record had every word, so records with any of them are shown
    # The query's analysed terms, for what else the page matches against them (pinned notices).
    terms: tuple[QueryTerm, ...] = field(default=(), repr=False, compare=False)
    # `to_json()` as the JSON API encodes it, made once: a cached result is served many times (search_app/api.py).
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encoded(self, encode: Callable[[dict[str, Any]], bytes]) -> bytes:
        if self._encoded is None:
            object.__setattr__(self, "_encoded", encode(self.to_json()))  # a cache, not a change of value
        return self._encoded  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        """The search API's shape, shared by `library search --json` and `/api/v1/search`."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "total": self.total,
            "took_ms": round(self.took_ms, 2),
            "page": self.query.page,
            "size": self.query.size,
            "relaxed": self.relaxed,
            "hits": [
                {
                    "id": hit.id,
                    "kind": hit.kind,
                    "title": hit.title,
                    "url": hit.url,
                    "snippet": hit.snippet,
                    "score": round(hit.score, 4),
                    "provenance": hit.provenance,
                    "organization": hit.organization,
                    "region": hit.region,
                    "categories": list(hit.categories),
                    "published_at": iso(hit.published_at),
                    "event_at": iso(hit.event_at),
                    "verified_at": iso(hit.verified_at),
                    "details": hit.details,
                }
                for hit in self.hits
            ],
            "facets": {
                name: [{"value": v.value, "label": v.label, "count": v.count} for v in values]
                for name, values in self.facets.items()
            },
        }


def _regex_escape(char: str) -> str:
    return "\\" + char if char in REGEX_META else char


def term_clause(term: QueryTerm) -> TermClause:
    """Every way one analysed term can match, across fields and forms, with their boosts."""
    alternatives: list[FieldMatch] = []
    for group, group_boost in GROUP_BOOSTS.items():
        if term.c:
            alternatives.append(FieldMatch(f"{group}_c", term.c, group_boost * FORM_BOOSTS["c"]))
        if term.a:
            alternatives.append(FieldMatch(f"{group}_a", term.a, group_boost * FORM_BOOSTS["a"]))
        if term.kana and term.r:
            alternatives.append(FieldMatch(f"{group}_r", term.r, group_boost * FORM_BOOSTS["r"]))
            # The same reading as the index may have cut it into units (としょかん → トショ カン of 図書館).
            alternatives.extend(
                FieldMatch(f"{group}_r", split, group_boost * FORM_BOOSTS["r"]) for split in term.r_splits
            )
        if len(term.b) == 1 and len(term.b[0]) == 1:
            # One character: a substring match is the character alone (a one-character run) or any bigram
            # that starts with it. Bigrams that end with it are left out: a regex that starts with "." walks
            # the whole term dictionary (about 10x slower at 20k records, done again for the facets), and they
            # add only the character's occurrences at the end of a run, which the c and a forms mostly match
            # as words anyway (みなと市 → 市).
            char = _regex_escape(term.b[0])
            alternatives.append(
                FieldMatch(f"{group}_b", (), group_boost * FORM_BOOSTS["b"], regex=f"{char}.?")
            )
        elif term.b:
            alternatives.append(FieldMatch(f"{group}_b", term.b, group_boost * FORM_BOOSTS["b"]))
    return TermClause(tuple(alternatives))


def _word_terms(analyzer: Analyzer, term: Term) -> list[QueryTerm]:
    return [analyzer.phrase(term.text)] if term.phrase else analyzer.query_terms(term.text)


def compile_query(
    parsed: ParsedQuery, analyzer: Analyzer
) -> tuple[tuple[tuple[TermClause, ...], ...], tuple[TermClause, ...], list[QueryTerm]]:
    """(AND-groups of OR-clauses, excluded clauses, the positive terms for highlighting)."""
    groups: list[tuple[TermClause, ...]] = []
    highlight: list[QueryTerm] = []
    for group in parsed.groups:
        if len(group) == 1:
            # A single word: each content morpheme must match (図書館の開館時間 → 図書館 AND 開館 AND 時間).
            # Repeats add nothing, and one long word can analyse into hundreds of terms: dedupe and cap them.
            for analysed in _word_terms(analyzer, group[0]):
                if analysed in highlight:
                    continue
                if len(groups) >= MAX_TERMS:
                    break
                groups.append((term_clause(analysed),))
                highlight.append(analysed)
        else:
            # Words joined by OR: each alternative is taken as a whole, in order.
            options = tuple(term_clause(analyzer.phrase(term.text)) for term in group)
            groups.append(options)
            highlight.extend(analyzer.phrase(term.text) for term in group)
    excluded = tuple(term_clause(analyzer.phrase(term.text)) for term in parsed.excluded)
    return tuple(group for group in groups if group[0].alternatives), excluded, highlight


def _facet_label(name: str, value: str) -> str:
    if name == "kind":
        return KIND_LABELS.get(value, value)
    if name == "provenance":
        return PROVENANCE_LABELS.get(value, value)
    if name == "categories" and is_category(value):
        return category_label(value)
    if name == "year":
        return f"{value}年"
    return value


def _word_clause(term: QueryTerm, group: str) -> TermClause:
    """How ``term`` matches ``group``'s text as indexed words: its mode C and A forms, readings of kana terms;
    not bigrams, which are substrings, and substrings make_snippet finds itself."""
    return TermClause(
        tuple(
            match
            for match in term_clause(term).alternatives
            if match.field.startswith(f"{group}_") and not match.field.endswith("_b")
        )
    )


def _as_words(engine: SearchEngine, terms: Sequence[QueryTerm], hit: EngineHit) -> Callable[[], bool]:
    """Whether the text a hit's snippet is cut from (its body, else its title) holds any term as indexed
    words. Asked of the index only when the snippet needs it (make_snippet's ``as_words``): a count over one
    document, a fraction of a millisecond. A failed question means "maybe", which only costs the tokenizing
    it would have saved."""
    group = "body" if hit.document.body else "title"

    def ask() -> bool:
        clauses = tuple(clause for term in terms if (clause := _word_clause(term, group)).alternatives)
        if not clauses:
            return False
        question = EngineQuery(must=(clauses,), filters=Filters(ids=(hit.id,)), limit=0, facets=())
        try:
            return engine.search(question).total > 0
        except EngineError:
            return True

    return ask


def _hit(
    engine: SearchEngine, engine_hit: EngineHit, terms: tuple[QueryTerm, ...], learned: dict[int, set[str]]
) -> Hit:
    document = engine_hit.document
    source = document.body or document.title
    normalized = document.body_normalized if document.body else None
    return Hit(
        id=document.id,
        kind=document.kind,
        title=document.title,
        url=document.url,
        snippet=make_snippet(
            source,
            terms,
            max_chars=SNIPPET_CHARS,
            learned=learned,
            as_words=_as_words(engine, terms, engine_hit),
            normalized=normalized,
        ),
        score=engine_hit.score,
        provenance=document.provenance,
        organization=document.organization,
        region=document.region,
        categories=document.categories,
        published_at=document.published_at,
        event_at=document.event_at,
        verified_at=document.verified_at,
        details=document.details,
        terms=terms,
    )


def search(engine: SearchEngine, analyzer: Analyzer, query: Query) -> Results:
    """Run a user query. Bad syntax never raises; out-of-range parameters raise QueryError."""
    started = time.perf_counter()
    query.validate()
    parsed = parse_query(query.text)
    groups, excluded, terms = compile_query(parsed, analyzer)
    sort: SortOrder = query.sort
    if sort == "relevance" and not groups:
        sort = "newest"  # with no words to rank by, the newest records are the useful order
    engine_query = EngineQuery(
        must=groups,
        must_not=excluded,
        filters=Filters(
            kind=query.kind,
            categories=query.category,
            organization=query.organization,
            region=query.region,
            provenance=query.provenance,
            year=query.year,
            date_from=query.date_from,
            date_to=query.date_to,
        ),
        sort=sort,
        offset=(query.page - 1) * query.size,
        limit=query.size,
        facets=FACET_FIELDS,
    )
    found = engine.search(engine_query)
    relaxed = False
    if found.total == 0 and len(groups) > 1:
        found = engine.search(replace(engine_query, minimum_should_match=1))
        relaxed = found.total > 0
    facets = {
        name: [FacetValue(value, _facet_label(name, value), count) for value, count in buckets]
        for name, buckets in found.facets.items()
    }
    learned: dict[int, set[str]] = {}  # kana terms' spellings, shared by the page's snippets (highlight.py)
    shared_terms = tuple(terms)  # one tuple for the page's hits and its pinned notices
    hits = [_hit(engine, hit, shared_terms, learned) for hit in found.hits]
    took_ms = (time.perf_counter() - started) * 1000
    return Results(
        query=query, total=found.total, took_ms=took_ms, hits=hits, facets=facets, relaxed=relaxed,
        terms=shared_terms,
    )
