"""The contract every search engine implements (DESIGN §1–§3).

Engines receive documents whose text is already analysed into whitespace-separated tokens, so tantivy and
Elasticsearch rank the same tokens. `IndexDocument` is also the allowlist of what may ever reach an index (T08):
an engine stores these fields and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from indexer.analysis.normalize import Normalized, normalize

# Token streams per text group; the analyzer's four forms per group (DESIGN §2).
TEXT_GROUPS = ("title", "meta", "body")
FORMS = ("c", "a", "r", "b")
TOKEN_FIELDS = tuple(f"{group}_{form}" for group in TEXT_GROUPS for form in FORMS)

# Facets the engines count; "year" is the publication year.
FACET_FIELDS = ("kind", "categories", "organization", "region", "provenance", "year")

SortOrder = Literal["relevance", "newest", "event"]
SORT_ORDERS: tuple[SortOrder, ...] = ("relevance", "newest", "event")


class EngineError(RuntimeError):
    """The engine cannot answer (down, busy, corrupt); callers show a 503, never a stack trace."""


class EngineUnavailable(EngineError):
    """The engine cannot be reached at all (down, timing out, circuit open): nothing about the request is wrong,
    so queued work waits for it rather than counting a failed attempt."""


@dataclass(frozen=True, slots=True)
class IndexDocument:
    id: str
    revision: int
    kind: str
    title: str
    body: str
    url: str | None
    provenance: str
    organization: str | None
    region: str | None
    categories: tuple[str, ...]
    published_at: datetime | None
    event_at: datetime | None
    verified_at: datetime | None
    # Display-only facts a hit needs without a database round trip (e.g. maker, product, place).
    details: dict[str, str]
    tokens: dict[str, str]  # TOKEN_FIELDS name -> space-joined tokens
    # The body as snippets search it, made at index time (build_payload); None: made when a snippet needs it.
    body_normalized: Normalized | None = field(default=None, repr=False, compare=False)

    @property
    def year(self) -> str | None:
        return str(self.published_at.year) if self.published_at else None


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """One way a term can match: a token (or a phrase of tokens) in one field, or a regex over bigrams."""

    field: str
    tokens: tuple[str, ...] = ()
    boost: float = 1.0
    regex: str | None = None


@dataclass(frozen=True, slots=True)
class TermClause:
    """A user term: it matches when any of its alternatives matches (best alternative scores)."""

    alternatives: tuple[FieldMatch, ...]


@dataclass(frozen=True, slots=True)
class Filters:
    kind: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    organization: tuple[str, ...] = ()
    region: tuple[str, ...] = ()
    provenance: tuple[str, ...] = ()
    year: tuple[str, ...] = ()
    date_from: datetime | None = None
    date_to: datetime | None = None
    ids: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return self == Filters()


@dataclass(frozen=True, slots=True)
class EngineQuery:
    """Engine-neutral query: AND over `must` groups, each group an OR of clauses."""

    must: tuple[tuple[TermClause, ...], ...] = ()
    must_not: tuple[TermClause, ...] = ()
    filters: Filters = Filters()
    sort: SortOrder = "relevance"
    offset: int = 0
    limit: int = 10
    facets: tuple[str, ...] = FACET_FIELDS
    facet_size: int = 20
    # Match when at least this many of the `must` groups match (None: all of them).
    minimum_should_match: int | None = None


@dataclass(frozen=True, slots=True)
class EngineHit:
    id: str
    score: float
    document: IndexDocument


@dataclass(frozen=True, slots=True)
class EngineResult:
    total: int
    hits: list[EngineHit]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


Progress = Callable[[int], None]


@runtime_checkable
class SearchEngine(Protocol):
    name: str

    def upsert(self, documents: Iterable[IndexDocument]) -> int:
        """Write documents; one whose revision is not newer than the indexed one is skipped. Returns writes."""

    def delete(self, ids_with_revision: Iterable[tuple[str, int]]) -> int:
        """Remove documents as of a revision; a later upsert of an older revision must not bring them back."""

    def search(self, query: EngineQuery) -> EngineResult: ...

    def count(self) -> int:
        """Searchable documents (tombstones excluded)."""

    def versions(self) -> dict[str, int]:
        """id -> indexed revision of every searchable document, to reconcile against the store (T25)."""

    def rebuild(self, documents: Iterable[IndexDocument], progress: Progress | None = None) -> int:
        """Build a fresh index from `documents` and switch to it atomically; searches never see a half index."""

    def suggest(self, field: str, prefix: str, limit: int = 10) -> list[tuple[str, int]]:
        """Indexed terms of `field` starting with `prefix`, with document frequencies."""

    def version(self) -> Hashable | None:
        """A token that changes whenever what searches see may have changed, whichever process wrote, cheap
        enough to ask before every search (search_app.cache keys results on it); None: cannot tell cheaply."""

    def close(self) -> None: ...


def sorted_facets(buckets: Sequence[tuple[str, int]], size: int) -> list[tuple[str, int]]:
    """Most frequent first, ties by value, so every engine lists facets in the same order."""
    return sorted(buckets, key=lambda item: (-item[1], item[0]))[:size]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def build_payload(document: IndexDocument) -> dict[str, Any]:
    """Display fields of a hit, stored beside the index but never indexed, in every engine."""
    return {
        "id": document.id,
        "revision": document.revision,
        "kind": document.kind,
        "title": document.title,
        "body": document.body,
        "url": document.url,
        "provenance": document.provenance,
        "organization": document.organization,
        "region": document.region,
        "categories": list(document.categories),
        "published_at": _iso(document.published_at),
        "event_at": _iso(document.event_at),
        "verified_at": _iso(document.verified_at),
        "details": dict(document.details),
        # Normalizing a body is a third of its snippet, on every search that shows it: done once, here.
        "body_norm": normalize(document.body).stored(document.body),
    }


def document_from_payload(payload: dict[str, Any]) -> IndexDocument:
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    stored = payload.get("body_norm")  # absent from payloads indexed before it was stored: a reindex adds it
    return IndexDocument(
        id=payload["id"],
        revision=payload["revision"],
        kind=payload["kind"],
        title=payload["title"],
        body=payload["body"],
        url=payload["url"],
        provenance=payload["provenance"],
        organization=payload["organization"],
        region=payload["region"],
        categories=tuple(payload["categories"]),
        published_at=when(payload["published_at"]),
        event_at=when(payload["event_at"]),
        verified_at=when(payload["verified_at"]),
        details=payload["details"],
        tokens={},
        body_normalized=None if stored is None else Normalized.from_stored(payload["body"], stored),
    )
