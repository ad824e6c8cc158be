"""The cluster engine: Elasticsearch over pre-analysed tokens (DESIGN §1–§4).

The mapping lives in `schemas/elasticsearch/records-v1.json`; the alias (`<prefix>records`) and the
concrete index (`<prefix>records-v1-<timestamp>`) are named after that file, so a mapping change is a new
file and a rebuild. Every request body is built by a pure module-level function (no client), so its exact
shape is unit-tested without a server; `ElasticsearchEngine` only sends them and reads the answers.

Writes mirror the tantivy engine: each document is indexed with its revision as an external version, so a
stale or duplicate delivery is refused by the cluster (409, counted as "already done"), and a delete writes
a versioned tombstone (`live: false`) instead of removing the document, so a late stale upsert cannot
resurrect it (T25).

A rebuild loads a fresh index with refresh off and no replicas, restores the template's settings,
refreshes, then moves the alias in one `update_aliases` call and drops the old index. Rebuilds are
serialised by a lock document in `<prefix>records-lock`, created with op_type=create (the cluster refuses
a second one), carrying an expiry that the running rebuild renews, so a killed rebuild blocks others only
until the lock expires.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from elasticsearch import (
    ApiError,
    BadRequestError,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    TransportError,
)
from elasticsearch.helpers import streaming_bulk

import schemas
from indexer.engines.base import (
    FACET_FIELDS,
    TOKEN_FIELDS,
    EngineError,
    EngineHit,
    EngineUnavailable,
    EngineQuery,
    EngineResult,
    FieldMatch,
    Filters,
    IndexDocument,
    Progress,
    TermClause,
    build_payload,
    document_from_payload,
    sorted_facets,
)

TEMPLATE_PATH = Path(schemas.__file__).parent / "elasticsearch" / "records-v1.json"
ANALYZER = "pretokenized"  # the template's whitespace-only analyzer
TIE_BREAKER = 0.1  # as tantivy's disjunction_max_query in the embedded engine

SEARCH_TIMEOUT = 2.0  # seconds; the UI answers 503 rather than hang
WRITE_TIMEOUT = 30.0
ADMIN_TIMEOUT = 120.0  # index creation, settings, refresh of a freshly loaded index
BULK_CHUNK = 500
VERSIONS_PAGE = 5_000
PIT_KEEP_ALIVE = "1m"

LOCK_ID = "rebuild"
LOCK_TTL_SECONDS = 600
LOCK_RENEW_SECONDS = 60
LOCK_MAPPINGS = {
    "dynamic": "strict",
    "properties": {"owner": {"type": "keyword"}, "expires_at": {"type": "long"}},
}

# Settings a bulk load overrides (no refreshes, no replica copies) and restores from the template afterwards.
REBUILD_SETTINGS = {"refresh_interval": "-1", "number_of_replicas": 0, "auto_expand_replicas": "false"}

_FILE_NAME = re.compile(r"^(?P<name>[a-z0-9_]+)-v(?P<version>\d+)$")
_LUCENE_REGEX_META = set('.?+*|{}[]()"\\#@&<>~')
_FILTER_FIELDS = ("kind", "categories", "organization", "region", "provenance", "year")


# --- template and names -------------------------------------------------------------------------------------


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def alias_name(prefix: str, path: Path = TEMPLATE_PATH) -> str:
    """`records-v1.json` with prefix `library-` serves the alias `library-records`."""
    return prefix + _parse_file_name(path)[0]


def index_name(prefix: str, now: datetime, path: Path = TEMPLATE_PATH) -> str:
    """A concrete index: `library-records-v1-20260501120000123456` (UTC, microseconds keep names unique)."""
    name, version = _parse_file_name(path)
    return f"{prefix}{name}-v{version}-{now.astimezone(UTC):%Y%m%d%H%M%S%f}"


def _parse_file_name(path: Path) -> tuple[str, str]:
    found = _FILE_NAME.match(path.stem)
    if not found:
        raise ValueError(f"index template file must be named <name>-v<N>.json, not {path.name}")
    return found["name"], found["version"]


def suggest_fields(template: dict[str, Any]) -> frozenset[str]:
    """Token fields whose terms can be listed: those the template loads into fielddata."""
    properties = template["mappings"]["properties"]
    return frozenset(name for name in TOKEN_FIELDS if properties.get(name, {}).get("fielddata"))


def rebuild_settings(template: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings to create the index with for a bulk load, settings that restore the template afterwards).

    A key the template leaves out is restored to null, which Elasticsearch reads as "back to the default".
    """
    settings = template["settings"]
    loading = {**settings, **REBUILD_SETTINGS}
    restore = {key: settings.get(key) for key in REBUILD_SETTINGS}
    return loading, restore


# --- documents ----------------------------------------------------------------------------------------------


def _epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None


def build_document_body(document: IndexDocument) -> dict[str, Any]:
    """The indexed source of a live document; absent values are left out, as in the tantivy engine."""
    body: dict[str, Any] = {
        "id": document.id,
        "revision": document.revision,
        "live": True,
        "kind": document.kind,
        "provenance": document.provenance,
    }
    if document.categories:
        body["categories"] = list(document.categories)
    for name in ("organization", "region", "year"):
        value = getattr(document, name)
        if value:
            body[name] = value
    for name, value in (("date_ts", _epoch(document.published_at)), ("event_ts", _epoch(document.event_at))):
        if value is not None:
            body[name] = value
    for name in TOKEN_FIELDS:
        tokens = document.tokens.get(name)
        if tokens:
            body[name] = tokens
    body["payload"] = build_payload(document)
    return body


def build_tombstone_body(record_id: str, revision: int) -> dict[str, Any]:
    return {"id": record_id, "revision": revision, "live": False}


def _versioned(record_id: str, revision: int, source: dict[str, Any]) -> dict[str, Any]:
    # External versioning: the cluster keeps the write only if `revision` is greater than the stored one.
    return {
        "_op_type": "index",
        "_id": record_id,
        "_version": revision,
        "_version_type": "external",
        "_source": source,
    }


def build_bulk_actions(documents: Iterable[IndexDocument]) -> Iterator[dict[str, Any]]:
    """helpers.bulk actions; the target index is given to the bulk call, so these never name one."""
    for document in documents:
        yield _versioned(document.id, document.revision, build_document_body(document))


def build_delete_actions(ids_with_revision: Iterable[tuple[str, int]]) -> Iterator[dict[str, Any]]:
    """Deletes as versioned tombstones: a later stale upsert gets 409 instead of bringing the record back."""
    for record_id, revision in ids_with_revision:
        yield _versioned(record_id, revision, build_tombstone_body(record_id, revision))


def newest_per_chunk(actions: Iterable[dict[str, Any]], size: int = BULK_CHUNK) -> Iterator[dict[str, Any]]:
    """Within each chunk keep only the newest revision per id, so a batch writes each record at most once."""
    iterator = iter(actions)
    while chunk := list(islice(iterator, size)):
        newest: dict[str, dict[str, Any]] = {}
        for action in chunk:
            held = newest.get(action["_id"])
            if held is None or action["_version"] > held["_version"]:
                newest[action["_id"]] = action
        yield from newest.values()


# --- queries ------------------------------------------------------------------------------------------------


def build_match(match: FieldMatch) -> dict[str, Any]:
    if match.regex is not None:
        # flags NONE: Lucene's optional operators (~ complement, & intersection, @, #, <n-m>) would read our
        # escaped bigram patterns differently from tantivy's regex syntax; plain alternation and `.` suffice.
        return {"regexp": {match.field: {"value": match.regex, "flags": "NONE", "boost": match.boost}}}
    if len(match.tokens) == 1:
        # The token is already analysed: a term query looks it up as is.
        return {"term": {match.field: {"value": match.tokens[0], "boost": match.boost}}}
    return {
        "match_phrase": {
            match.field: {
                "query": " ".join(match.tokens),
                "analyzer": ANALYZER,
                "slop": 0,
                "boost": match.boost,
            }
        }
    }


def build_clause(clause: TermClause) -> dict[str, Any]:
    alternatives = [build_match(match) for match in clause.alternatives]
    if len(alternatives) == 1:
        return alternatives[0]
    return {"dis_max": {"queries": alternatives, "tie_breaker": TIE_BREAKER}}


def _group(group: tuple[TermClause, ...]) -> dict[str, Any]:
    clauses = [build_clause(clause) for clause in group]
    if len(clauses) == 1:
        return clauses[0]
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def build_filters(filters: Filters) -> list[dict[str, Any]]:
    """Values of one facet are OR'ed (terms), different facets AND'ed; tombstones are never searchable."""
    clauses: list[dict[str, Any]] = [{"term": {"live": True}}]
    for name in _FILTER_FIELDS:
        values = getattr(filters, name)
        if values:
            clauses.append({"terms": {name: list(values)}})
    if filters.ids:
        clauses.append({"terms": {"id": list(filters.ids)}})
    if filters.date_from or filters.date_to:
        # Inclusive like the embedded engine; a document without a date has no date_ts and never matches.
        bounds: dict[str, int] = {}
        if filters.date_from:
            bounds["gte"] = int(filters.date_from.timestamp())
        if filters.date_to:
            bounds["lte"] = int(filters.date_to.timestamp())
        clauses.append({"range": {"date_ts": bounds}})
    return clauses


def build_sort(sort: str) -> list[Any]:
    # `id` breaks ties so that pages never overlap or skip a hit between two requests.
    if sort == "newest":
        return [{"date_ts": {"order": "desc", "missing": "_last"}}, {"id": "asc"}]
    if sort == "event":
        return [{"event_ts": {"order": "asc", "missing": "_last"}}, {"id": "asc"}]
    if sort == "relevance":
        return ["_score", {"id": "asc"}]
    raise ValueError(f"unknown sort order {sort!r}")


def build_query(query: EngineQuery) -> dict[str, Any]:
    boolean: dict[str, Any] = {"filter": build_filters(query.filters)}
    groups = [_group(group) for group in query.must]
    if groups and query.minimum_should_match is None:
        boolean["must"] = groups
    elif groups:
        boolean["must"] = [{"bool": {"should": groups, "minimum_should_match": query.minimum_should_match}}]
    if query.must_not:
        boolean["must_not"] = [build_clause(clause) for clause in query.must_not]
    return {"bool": boolean}


def build_search_body(query: EngineQuery) -> dict[str, Any]:
    unknown = set(query.facets) - set(FACET_FIELDS)
    if unknown:
        raise ValueError(f"not facet fields: {sorted(unknown)}")
    body: dict[str, Any] = {
        "query": build_query(query),
        "sort": build_sort(query.sort),
        "from": max(query.offset, 0),
        "size": max(query.limit, 0),
        "track_total_hits": True,
        "_source": ["payload"],
    }
    if query.facets:
        body["aggs"] = {name: {"terms": {"field": name, "size": query.facet_size}} for name in query.facets}
    return body


def lucene_regex_escape(text: str) -> str:
    return "".join("\\" + char if char in _LUCENE_REGEX_META else char for char in text)


def build_suggest_body(field: str, prefix: str, limit: int) -> dict[str, Any]:
    """Terms of `field` starting with `prefix`, in term order, with the number of live documents holding each.

    A terms aggregation over the field's fielddata, restricted to documents that hold such a term; this lists
    the same terms with the same document counts as tantivy's terms_with_prefix.
    """
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": [{"term": {"live": True}}, {"prefix": {field: {"value": prefix}}}]}},
        "aggs": {
            "suggestions": {
                "terms": {
                    "field": field,
                    "include": lucene_regex_escape(prefix) + ".*",
                    "size": limit,
                    "order": {"_key": "asc"},
                }
            }
        },
    }


def build_versions_body(
    pit_id: str, search_after: list[Any] | None, size: int = VERSIONS_PAGE
) -> dict[str, Any]:
    """One page of (id, revision) over live documents in a point in time, walked with search_after."""
    body: dict[str, Any] = {
        "size": size,
        "query": {"bool": {"filter": [{"term": {"live": True}}]}},
        "_source": ["revision"],
        "track_total_hits": False,
        "pit": {"id": pit_id, "keep_alive": PIT_KEEP_ALIVE},
        "sort": [{"_shard_doc": "asc"}],
    }
    if search_after is not None:
        body["search_after"] = search_after
    return body


# --- the engine ---------------------------------------------------------------------------------------------


@contextmanager
def _errors(action: str) -> Iterator[None]:
    """Any cluster or transport failure becomes an EngineError, which the UI shows as 503."""
    try:
        yield
    except TransportError as exc:  # connection refused, timeout: the cluster is unreachable
        raise EngineUnavailable(f"Elasticsearch に接続できず{action}できませんでした: {exc}") from exc
    except ApiError as exc:
        raise EngineError(f"Elasticsearch で{action}できませんでした: {exc}") from exc


class _RebuildLock:
    """A lock document created with op_type=create; a second creator gets 409.

    It carries an expiry renewed while the holder works; an expired lock (its holder was killed) is taken over
    with a compare-and-swap on its sequence number, so two waiting rebuilds cannot both take it.
    """

    def __init__(self, client: Elasticsearch, index: str) -> None:
        self._client = client
        self._index = index
        self._owner = uuid.uuid4().hex
        self._seq: tuple[int, int] | None = None
        self._renewed = 0.0

    def _document(self) -> dict[str, Any]:
        return {"owner": self._owner, "expires_at": int(time.time()) + LOCK_TTL_SECONDS}

    def _held(self, response: Any) -> None:
        self._seq = (response["_seq_no"], response["_primary_term"])
        self._renewed = time.monotonic()

    def acquire(self) -> None:
        busy = EngineError("別の再構築が実行中です。終わってからもう一度実行してください")
        try:
            self._held(self._client.create(index=self._index, id=LOCK_ID, document=self._document()))
            return
        except ConflictError:
            pass
        try:
            current = self._client.get(index=self._index, id=LOCK_ID)
        except NotFoundError:
            raise busy from None  # released between our two requests: the caller may simply retry
        if current["_source"]["expires_at"] > time.time():
            raise busy
        try:
            self._held(
                self._client.index(
                    index=self._index,
                    id=LOCK_ID,
                    document=self._document(),
                    if_seq_no=current["_seq_no"],
                    if_primary_term=current["_primary_term"],
                )
            )
        except ConflictError:
            raise busy from None

    def renew(self) -> None:
        if self._seq is None or time.monotonic() - self._renewed < LOCK_RENEW_SECONDS:
            return
        try:
            self._held(
                self._client.index(
                    index=self._index,
                    id=LOCK_ID,
                    document=self._document(),
                    if_seq_no=self._seq[0],
                    if_primary_term=self._seq[1],
                )
            )
        except ConflictError:
            raise EngineError("再構築のロックが他の処理に奪われました。再構築を中止します") from None

    def release(self) -> None:
        if self._seq is None:
            return
        try:
            self._client.delete(
                index=self._index, id=LOCK_ID, if_seq_no=self._seq[0], if_primary_term=self._seq[1]
            )
        except (ConflictError, NotFoundError):
            pass  # it expired and another rebuild holds it now: not ours to delete
        finally:
            self._seq = None


class ElasticsearchEngine:
    name = "elasticsearch"

    def __init__(self, url: str, prefix: str = "library-") -> None:
        if prefix != prefix.lower():
            raise ValueError(f"Elasticsearch index names are lower case: prefix {prefix!r}")
        self._template = load_template()
        self._prefix = prefix
        self._alias = alias_name(prefix)
        self._lock_index = f"{self._alias}-lock"
        self._suggestable = suggest_fields(self._template)
        # Constructing the client opens no connection: a cluster that is down fails the first request instead.
        self._client = Elasticsearch(
            url, request_timeout=WRITE_TIMEOUT, max_retries=2, retry_on_timeout=False
        )
        self._ready = False

    @property
    def alias(self) -> str:
        return self._alias

    # --- indices and the lock -------------------------------------------------------------------------------

    def _admin(self) -> Elasticsearch:
        return self._client.options(request_timeout=ADMIN_TIMEOUT)

    def _ensure_lock_index(self) -> None:
        try:
            self._admin().indices.create(
                index=self._lock_index,
                mappings=LOCK_MAPPINGS,
                settings={"number_of_shards": 1, "auto_expand_replicas": "0-1"},
            )
        except BadRequestError:
            if not self._client.indices.exists(index=self._lock_index):
                raise

    @contextmanager
    def _locked(self) -> Iterator[_RebuildLock]:
        self._ensure_lock_index()
        lock = _RebuildLock(self._client, self._lock_index)
        lock.acquire()
        try:
            yield lock
        finally:
            lock.release()

    def _ensure_index(self) -> None:
        """Create the first index behind the alias, under the lock so two processes cannot both create one."""
        if self._ready:
            return
        # The check runs on the search path: on a hanging cluster it must give up within the search budget (T28);
        # only the one-time creation below may take the longer administrative timeout.
        probe = self._client.options(request_timeout=SEARCH_TIMEOUT, max_retries=0)
        with _errors("索引を準備"):
            if not probe.indices.exists_alias(name=self._alias):
                with self._locked():
                    if not self._client.indices.exists_alias(name=self._alias):
                        self._admin().indices.create(
                            index=index_name(self._prefix, datetime.now(UTC)),
                            settings=self._template["settings"],
                            mappings=self._template["mappings"],
                            aliases={self._alias: {}},
                        )
        self._ready = True

    def _versioned_indices(self) -> dict[str, bool]:
        """Every index of this template family -> whether it currently carries the alias."""
        found = self._client.indices.get_alias(index=f"{self._alias}-v*", allow_no_indices=True)
        return {name: self._alias in info.get("aliases", {}) for name, info in found.items()}

    # --- writes ---------------------------------------------------------------------------------------------

    def _bulk(
        self, actions: Iterable[dict[str, Any]], index: str, refresh: str | bool, **options: Any
    ) -> int:
        """Send actions; returns writes. A 409 means the index already holds this or a newer revision."""
        written = 0
        failures: list[dict[str, Any]] = []
        for ok, item in streaming_bulk(
            self._client,
            actions,
            index=index,
            chunk_size=BULK_CHUNK,
            raise_on_error=False,
            max_retries=3,  # retries only 429 (the cluster asked us to slow down)
            refresh=refresh,
            **options,
        ):
            result = item.get("index", {})
            if ok and result.get("result") in ("created", "updated"):
                written += 1
            elif not ok and result.get("status") != 409:
                failures.append(result)
        if failures:
            first = failures[0]
            raise EngineError(
                f"Elasticsearch への書き込みが {len(failures)} 件失敗しました"
                f"（最初: {first.get('_id')}: {first.get('error')}）"
            )
        return written

    def upsert(self, documents: Iterable[IndexDocument]) -> int:
        self._ensure_index()
        with _errors("書き込み"):
            # wait_for: like tantivy's commit, the write is searchable when this returns.
            # require_alias: a missing alias must not auto-create a concrete index with a guessed mapping.
            return self._bulk(
                newest_per_chunk(build_bulk_actions(documents)), self._alias, "wait_for", require_alias=True
            )

    def delete(self, ids_with_revision: Iterable[tuple[str, int]]) -> int:
        self._ensure_index()
        with _errors("削除"):
            return self._bulk(
                newest_per_chunk(build_delete_actions(ids_with_revision)),
                self._alias,
                "wait_for",
                require_alias=True,
            )

    def rebuild(self, documents: Iterable[IndexDocument], progress: Progress | None = None) -> int:
        with _errors("再構築"), self._locked() as lock:
            return self._rebuild(documents, progress, lock)

    def _rebuild(
        self, documents: Iterable[IndexDocument], progress: Progress | None, lock: _RebuildLock
    ) -> int:
        admin = self._admin()
        for stale, aliased in self._versioned_indices().items():
            if not aliased:  # left by a rebuild that was killed
                admin.indices.delete(index=stale, ignore_unavailable=True)
        loading, restore = rebuild_settings(self._template)
        new_index = index_name(self._prefix, datetime.now(UTC))
        admin.indices.create(index=new_index, settings=loading, mappings=self._template["mappings"])

        def checked() -> Iterator[IndexDocument]:
            seen: set[str] = set()
            for document in documents:
                if document.id in seen:
                    raise EngineError(f"再構築の入力に重複した ID があります: {document.id}")
                seen.add(document.id)
                lock.renew()
                yield document

        try:
            count = 0
            for ok, item in streaming_bulk(
                self._client,
                build_bulk_actions(checked()),
                index=new_index,
                chunk_size=BULK_CHUNK,
                raise_on_error=False,
                max_retries=3,
                refresh=False,  # refresh is off on the new index; it is refreshed once, before the swap
            ):
                if not ok:
                    raise EngineError(f"再構築中の書き込みに失敗しました: {item}")
                count += 1
                if progress:
                    progress(1)
            admin.indices.put_settings(index=new_index, settings=restore)
            admin.indices.refresh(index=new_index)
            previous = [name for name, aliased in self._versioned_indices().items() if aliased]
            admin.indices.update_aliases(
                actions=[{"remove": {"index": name, "alias": self._alias}} for name in previous]
                + [{"add": {"index": new_index, "alias": self._alias}}]
            )
        except BaseException:
            # The original failure matters more than this cleanup; the next rebuild removes an orphan.
            with suppress(TransportError, ApiError):
                admin.indices.delete(index=new_index, ignore_unavailable=True)
            raise
        self._ready = True
        # The switch is done; an old index that fails to go is unaliased, and the next rebuild removes it.
        with suppress(TransportError, ApiError):
            if previous:
                admin.indices.delete(index=",".join(previous), ignore_unavailable=True)
        return count

    # --- reads ----------------------------------------------------------------------------------------------

    def _reader(self) -> Elasticsearch:
        return self._client.options(request_timeout=SEARCH_TIMEOUT)

    def search(self, query: EngineQuery) -> EngineResult:
        self._ensure_index()
        with _errors("検索"):
            answer = self._reader().search(index=self._alias, body=build_search_body(query))
        sorted_by_score = query.sort == "relevance"
        hits = [
            EngineHit(
                id=hit["_id"],
                score=float(hit["_score"] or 0.0) if sorted_by_score else 0.0,
                document=document_from_payload(hit["_source"]["payload"]),
            )
            for hit in answer["hits"]["hits"]
        ]
        facets = {
            name: sorted_facets(
                [
                    (str(bucket["key"]), int(bucket["doc_count"]))
                    for bucket in answer["aggregations"][name]["buckets"]
                ],
                query.facet_size,
            )
            for name in query.facets
        }
        return EngineResult(total=int(answer["hits"]["total"]["value"]), hits=hits, facets=facets)

    def count(self) -> int:
        self._ensure_index()
        with _errors("件数の取得"):
            answer = self._reader().count(
                index=self._alias, query={"bool": {"filter": [{"term": {"live": True}}]}}
            )
        return int(answer["count"])

    def versions(self) -> dict[str, int]:
        self._ensure_index()
        result: dict[str, int] = {}
        with _errors("版の一覧の取得"):
            pit_id = self._client.open_point_in_time(index=self._alias, keep_alive=PIT_KEEP_ALIVE)["id"]
            try:
                after: list[Any] | None = None
                while True:
                    page = self._client.search(body=build_versions_body(pit_id, after))
                    pit_id = page.get("pit_id", pit_id)
                    hits = page["hits"]["hits"]
                    for hit in hits:
                        result[hit["_id"]] = int(hit["_source"]["revision"])
                    if len(hits) < VERSIONS_PAGE:
                        break
                    after = hits[-1]["sort"]
            finally:
                self._client.close_point_in_time(id=pit_id)
        return result

    def version(self) -> None:
        # Asking the cluster would cost a round trip per search: result caches fall back to their lifetime.
        return None

    def suggest(self, field: str, prefix: str, limit: int = 10) -> list[tuple[str, int]]:
        # Only fields with fielddata in the template can list terms (titles); any other answers nothing.
        if field not in self._suggestable or not prefix or limit <= 0:
            return []
        self._ensure_index()
        with _errors("候補の取得"):
            answer = self._reader().search(index=self._alias, body=build_suggest_body(field, prefix, limit))
        return [
            (bucket["key"], int(bucket["doc_count"]))
            for bucket in answer["aggregations"]["suggestions"]["buckets"]
        ]

    def drop(self) -> None:
        """Delete every index of this prefix (tests, or retiring a deployment); not part of SearchEngine."""
        with _errors("索引の削除"):
            names = list(self._versioned_indices())
            if self._client.indices.exists(index=self._lock_index):
                names.append(self._lock_index)
            if names:
                self._admin().indices.delete(index=",".join(names), ignore_unavailable=True)
        self._ready = False

    def close(self) -> None:
        self._client.close()
