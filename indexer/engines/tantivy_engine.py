"""The embedded engine: tantivy over pre-analysed tokens (DESIGN §3).

Layout under the index directory: `gen-NNNNNN/` holds one complete tantivy index and `CURRENT` names the one in
use. A rebuild writes a new generation and replaces `CURRENT` atomically, so searches never see a half-built
index; every process re-reads `CURRENT` before it searches or writes, so none keeps writing to a retired one.

Writes are versioned: a document is written only when its revision is newer than the indexed one, and a delete
leaves a tombstone carrying its revision, so a stale upsert that arrives late cannot resurrect it (T25).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import tantivy

from indexer.engines.base import (
    FACET_FIELDS,
    TOKEN_FIELDS,
    EngineError,
    EngineHit,
    EngineUnavailable,
    EngineQuery,
    EngineResult,
    FieldMatch,
    IndexDocument,
    Progress,
    TermClause,
    build_payload,
    document_from_payload,
    sorted_facets,
)

logger = logging.getLogger(__name__)

# Sort keys for documents without a date: last when newest first, last when the soonest event comes first.
NO_DATE_DESC = -(2**62)
NO_DATE_ASC = 2**62
WRITER_HEAP = 64_000_000
REBUILD_HEAP = 256_000_000
LOCK_WAIT_SECONDS = 30.0
UPSERT_BATCH = 2_000
FEW_VALUES = 32  # filter values looked up one by one rather than as a term set


def _build_schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_integer_field("revision", stored=True, indexed=True, fast=True)
    builder.add_integer_field("live", indexed=True, fast=True)
    for name in FACET_FIELDS:
        builder.add_text_field(name, tokenizer_name="raw", fast=True)
    builder.add_integer_field("date_ts", indexed=True, fast=True)
    builder.add_integer_field("event_ts", indexed=True, fast=True)
    for name in TOKEN_FIELDS:
        builder.add_text_field(name, tokenizer_name="whitespace")
    builder.add_bytes_field("payload", stored=True)
    return builder.build()


def _epoch(value: datetime | None, missing: int) -> int:
    return int(value.timestamp()) if value else missing


def _encode_payload(document: IndexDocument) -> bytes:
    return json.dumps(build_payload(document), ensure_ascii=False).encode()


def _decode_payload(raw: bytes) -> IndexDocument:
    return document_from_payload(orjson.loads(raw))  # ten per search: half the time of json.loads


class TantivyEngine:
    name = "tantivy"

    def __init__(self, index_dir: Path) -> None:
        self._root = Path(index_dir)
        self._root.mkdir(parents=True, exist_ok=True)
        self._schema = _build_schema()
        self._lock = threading.RLock()  # the generation and index in use
        self._write_lock = threading.Lock()  # this process's writers, one at a time (_writer)
        # A child forked while merges ran (a Celery prefork pool) has no thread that would release the lock.
        fresh_lock = weakref.WeakMethod(self._fresh_write_lock)
        os.register_at_fork(after_in_child=lambda: (method := fresh_lock()) and method())
        self._generation: str | None = None
        self._index: tantivy.Index | None = None
        self._meta_identity: tuple[int, int, int] | None = None
        self._current_file = str(self._root / "CURRENT")
        # (identity of the CURRENT file, the name it holds): every search asks, and a stat costs a tenth of a read.
        self._current_seen: tuple[tuple[int, int, int], str | None] | None = None
        self._open_current()

    # --- generations -------------------------------------------------------------------------------------

    def _current_name(self) -> str | None:
        try:
            status = os.stat(self._current_file)
            # _publish replaces the file, so a new name comes with a new inode.
            identity = (status.st_ino, status.st_mtime_ns, status.st_size)
            seen = self._current_seen
            if seen is not None and seen[0] == identity:
                return seen[1]
            with open(self._current_file, encoding="ascii") as handle:
                name = handle.read().strip() or None
        except FileNotFoundError:
            return None
        # Read after the stat: a replacement in between only makes the next call read the file again.
        self._current_seen = (identity, name)
        return name

    def _publish(self, generation: str) -> None:
        tmp = self._root / "CURRENT.tmp"
        with open(tmp, "w") as handle:
            handle.write(generation + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._root / "CURRENT")
        directory = os.open(self._root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _new_generation_dir(self) -> Path:
        numbers = [int(p.name[4:]) for p in self._root.glob("gen-*") if p.name[4:].isdigit()]
        path = self._root / f"gen-{max(numbers, default=0) + 1:06d}"
        path.mkdir()
        return path

    def _open_current(self) -> None:
        with self._lock:
            name = self._current_name()
            if name is None or not (self._root / name).is_dir():
                with self._rebuild_lock(wait=True):
                    name = self._current_name()
                    if name is None or not (self._root / name).is_dir():
                        path = self._new_generation_dir()
                        tantivy.Index(self._schema, path=str(path))
                        self._publish(path.name)
                        name = path.name
            self._index = tantivy.Index(self._schema, path=str(self._root / name))
            self._generation = name
            self._meta_identity = None

    def _current(self) -> tantivy.Index:
        """The index `CURRENT` names, reloaded when another writer committed to it."""
        with self._lock:
            if self._current_name() != self._generation:
                self._open_current()
            assert self._index is not None and self._generation is not None
            identity = self._commit_identity(self._generation)
            if identity != self._meta_identity:
                self._index.reload()
                self._meta_identity = identity
            return self._index

    def _commit_identity(self, generation: str) -> tuple[int, int, int] | None:
        """Which commit a generation is at: tantivy replaces its meta.json on every commit, by any process. The
        inode tells apart two commits within one clock tick, which an mtime alone may not."""
        try:
            meta = os.stat(os.path.join(self._root, generation, "meta.json"))
        except OSError:  # a generation a rebuild has just retired, say: CURRENT is read again next time
            return None
        return meta.st_ino, meta.st_mtime_ns, meta.st_size

    @contextmanager
    def _rebuild_lock(self, wait: bool) -> Iterator[None]:
        with open(self._root / ".rebuild.lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise EngineError("別の再構築が実行中です。終わってからもう一度実行してください") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _writer(self) -> Iterator[tuple[tantivy.Index, Any]]:
        """A short-lived writer: tantivy allows one per index across processes, so hold it only per batch.

        Writers of this process take turns on a lock of their own, not on the one `_current()` takes, so
        that searches never wait for a write. The commit makes the batch searchable; the merges tantivy may
        start then (2 s now and then at 100k records) are waited for by a thread of their own, which keeps the
        write lock until they end: the caller (a shop's POST, say) does not wait for them, this process's next
        writer does, and tantivy's own lock holds off other processes' writers meanwhile, as before.
        """
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        self._write_lock.acquire()
        merging = False
        try:
            while True:
                index = self._current()
                try:
                    writer = index.writer(heap_size=WRITER_HEAP, num_threads=1)
                    break
                except ValueError as exc:
                    if "LockBusy" not in str(exc):
                        raise EngineError(f"索引に書き込めません: {exc}") from exc
                    if time.monotonic() > deadline:
                        raise EngineUnavailable(f"索引が別の処理に使われていて書き込めません: {exc}") from exc
                    time.sleep(0.05)
            try:
                yield index, writer
                writer.commit()
            except BaseException:
                writer.rollback()
                raise
            self._meta_identity = None
            finisher = threading.Thread(target=self._finish_merges, args=(writer,), name="tantivy-merges")
            finisher.daemon = True  # a merge cut short by exit is redone later; the commit stands
            finisher.start()
            merging = True
        finally:
            if not merging:
                self._write_lock.release()

    def _fresh_write_lock(self) -> None:
        self._write_lock = threading.Lock()

    def _finish_merges(self, writer: Any) -> None:
        """Wait for the merges a commit started, then let the next writer in (see `_writer`)."""
        try:
            writer.wait_merging_threads()
        except Exception:  # the merge is lost, not the commit: tantivy merges those segments again later
            logger.warning("tantivy: the merge after a commit failed", exc_info=True)
        finally:
            self._write_lock.release()

    def wait_for_merges(self) -> None:
        """Until the merges of this process's last commit have ended (close, rebuild, tests)."""
        with self._write_lock:
            pass

    # --- writes --------------------------------------------------------------------------------------------

    def _document(self, document: IndexDocument) -> tantivy.Document:
        fields: dict[str, Any] = {
            "id": document.id,
            "revision": document.revision,
            "live": 1,
            "kind": document.kind,
            "provenance": document.provenance,
            "categories": list(document.categories),
            "date_ts": _epoch(document.published_at, NO_DATE_DESC),
            "event_ts": _epoch(document.event_at, NO_DATE_ASC),
            "payload": _encode_payload(document),
        }
        for name in ("organization", "region", "year"):
            value = getattr(document, name)
            if value:
                fields[name] = value
        for name in TOKEN_FIELDS:
            tokens = document.tokens.get(name)
            if tokens:
                fields[name] = tokens
        return tantivy.Document(**fields)

    def _tombstone(self, record_id: str, revision: int) -> tantivy.Document:
        return tantivy.Document(id=record_id, revision=revision, live=0)

    def _indexed_revisions(self, index: tantivy.Index, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        searcher = index.searcher()
        query = tantivy.Query.term_set_query(self._schema, "id", ids)
        hits = searcher.search(query, limit=len(ids) * 2, count=False).hits
        revisions: dict[str, int] = {}
        for _, address in hits:
            stored = searcher.doc(address)
            revisions[stored.get_first("id")] = stored.get_first("revision")
        return revisions

    def _write(self, items: list[tuple[str, int, tantivy.Document]]) -> int:
        """Apply (id, revision, document) items whose revision is newer than what the index holds."""
        newest: dict[str, tuple[int, tantivy.Document]] = {}
        for record_id, revision, document in items:
            if record_id not in newest or revision > newest[record_id][0]:
                newest[record_id] = (revision, document)
        if not newest:
            return 0
        written = 0
        with self._writer() as (index, writer):
            indexed = self._indexed_revisions(index, list(newest))
            for record_id, (revision, document) in newest.items():
                if indexed.get(record_id, -1) >= revision:
                    continue  # stale or duplicate delivery: the index already has this or a newer revision
                writer.delete_documents_by_term("id", record_id)
                writer.add_document(document)
                written += 1
        return written

    def upsert(self, documents: Iterable[IndexDocument]) -> int:
        written = 0
        batch: list[tuple[str, int, tantivy.Document]] = []
        for document in documents:
            batch.append((document.id, document.revision, self._document(document)))
            if len(batch) >= UPSERT_BATCH:
                written += self._write(batch)
                batch = []
        return written + self._write(batch)

    def delete(self, ids_with_revision: Iterable[tuple[str, int]]) -> int:
        return self._write(
            [(record_id, revision, self._tombstone(record_id, revision)) for record_id, revision in ids_with_revision]
        )

    def rebuild(self, documents: Iterable[IndexDocument], progress: Progress | None = None) -> int:
        with self._rebuild_lock(wait=False):
            for stale in self._root.glob("gen-*"):  # left by a rebuild that was killed
                if stale.name != self._current_name():
                    shutil.rmtree(stale, ignore_errors=True)
            path = self._new_generation_dir()
            index = tantivy.Index(self._schema, path=str(path))
            writer = index.writer(heap_size=REBUILD_HEAP, num_threads=0)
            count = 0
            seen: set[str] = set()
            try:
                for document in documents:
                    if document.id in seen:
                        raise EngineError(f"再構築の入力に重複した ID があります: {document.id}")
                    seen.add(document.id)
                    writer.add_document(self._document(document))
                    count += 1
                    if progress:
                        progress(1)
                writer.commit()
                writer.wait_merging_threads()
            except BaseException:
                writer.rollback()
                del writer
                shutil.rmtree(path, ignore_errors=True)
                raise
            del writer
            previous = self._current_name()
            self._publish(path.name)
            with self._lock:
                self._open_current()
            if previous:
                self.wait_for_merges()  # one may still be writing to the retired generation
                shutil.rmtree(self._root / previous, ignore_errors=True)
            return count

    # --- reads ---------------------------------------------------------------------------------------------

    def _match(self, match: FieldMatch) -> tantivy.Query:
        if match.regex is not None:
            query = tantivy.Query.regex_query(self._schema, match.field, match.regex)
        elif len(match.tokens) == 1:
            query = tantivy.Query.term_query(self._schema, match.field, match.tokens[0])
        else:
            query = tantivy.Query.phrase_query(self._schema, match.field, list(match.tokens))
        return tantivy.Query.boost_query(query, match.boost) if match.boost != 1.0 else query

    def _clause(self, clause: TermClause) -> tantivy.Query:
        alternatives = [self._match(match) for match in clause.alternatives]
        if len(alternatives) == 1:
            return alternatives[0]
        return tantivy.Query.disjunction_max_query(alternatives, tie_breaker=0.1)

    def _any_of(self, field: str, values: tuple[str, ...]) -> tantivy.Query:
        if len(values) > FEW_VALUES:
            return tantivy.Query.term_set_query(self._schema, field, list(values))
        # A term set walks the field's whole term dictionary: 0.4 ms on the ids of 100k records, for one id.
        return tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(self._schema, field, value)) for value in values]
        )

    def _build_query(self, query: EngineQuery) -> tantivy.Query:
        occur = tantivy.Occur
        # Excluding the few tombstones costs a fraction of intersecting with every live document (13 % of a
        # search at 100k records).
        tombstones = tantivy.Query.term_query(self._schema, "live", 0)
        parts: list[tuple[Any, tantivy.Query]] = [(occur.MustNot, tombstones)]
        groups = []
        for group in query.must:
            clauses = [self._clause(clause) for clause in group]
            groups.append(
                clauses[0]
                if len(clauses) == 1
                else tantivy.Query.boolean_query([(occur.Should, clause) for clause in clauses])
            )
        if groups and query.minimum_should_match is None:
            parts.extend((occur.Must, group) for group in groups)
        elif groups:
            parts.append(
                (
                    occur.Must,
                    tantivy.Query.boolean_query(
                        [(occur.Should, group) for group in groups],
                        minimum_number_should_match=query.minimum_should_match,
                    ),
                )
            )
        parts.extend((occur.MustNot, self._clause(clause)) for clause in query.must_not)
        filters = query.filters
        for name in ("kind", "categories", "organization", "region", "provenance", "year"):
            values = getattr(filters, name)
            if values:
                parts.append((occur.Must, tantivy.Query.const_score_query(self._any_of(name, values), 0.0)))
        if filters.ids:
            parts.append((occur.Must, tantivy.Query.const_score_query(self._any_of("id", filters.ids), 0.0)))
        if filters.date_from or filters.date_to:
            date_range = tantivy.Query.range_query(
                self._schema,
                "date_ts",
                tantivy.FieldType.Integer,
                _epoch(filters.date_from, NO_DATE_DESC + 1),
                _epoch(filters.date_to, NO_DATE_ASC),
            )
            parts.append((occur.Must, tantivy.Query.const_score_query(date_range, 0.0)))
        if all(kind != occur.Must for kind, _ in parts):
            parts.append((occur.Must, tantivy.Query.all_query()))  # exclusions alone match nothing
        return tantivy.Query.boolean_query(parts)

    def search(self, query: EngineQuery) -> EngineResult:
        index = self._current()
        searcher = index.searcher()
        compiled = self._build_query(query)
        limit = max(query.limit, 0)
        if query.sort == "newest":
            sort: dict[str, Any] = {"order_by_field": "date_ts", "order": tantivy.Order.Desc}
        elif query.sort == "event":
            sort = {"order_by_field": "event_ts", "order": tantivy.Order.Asc}
        else:
            sort = {}
        try:
            found = searcher.search(compiled, limit=max(limit, 1), count=True, offset=query.offset, **sort)
        except ValueError as exc:
            raise EngineError(f"検索できませんでした: {exc}") from exc
        hits = []
        for key, address in found.hits[:limit]:
            document = _decode_payload(searcher.doc(address).get_first("payload"))
            hits.append(EngineHit(id=document.id, score=float(key) if not sort else 0.0, document=document))
        # Nothing matched: every bucket is empty, and the aggregation would run the whole query again to say so.
        facets: dict[str, list[tuple[str, int]]] = {name: [] for name in query.facets}
        if query.facets and found.count:
            aggregation = {
                name: {"terms": {"field": name, "size": query.facet_size}} for name in query.facets
            }
            answer = searcher.aggregate(compiled, aggregation)
            for name in query.facets:
                buckets = answer.get(name, {}).get("buckets", [])
                facets[name] = sorted_facets(
                    [(str(bucket["key"]), int(bucket["doc_count"])) for bucket in buckets], query.facet_size
                )
        return EngineResult(total=found.count or 0, hits=hits, facets=facets)

    def count(self) -> int:
        searcher = self._current().searcher()
        return searcher.search(tantivy.Query.term_query(self._schema, "live", 1), limit=1, count=True).count or 0

    def versions(self) -> dict[str, int]:
        searcher = self._current().searcher()
        live = tantivy.Query.term_query(self._schema, "live", 1)
        total = searcher.search(live, limit=1, count=True).count or 0
        result: dict[str, int] = {}
        if total:
            for _, address in searcher.search(live, limit=total, count=False).hits:
                stored = searcher.doc(address)
                result[stored.get_first("id")] = stored.get_first("revision")
        return result

    def version(self) -> tuple[str, tuple[int, int, int]] | None:
        """The generation `CURRENT` names (a rebuild switches it) and the commit it is at."""
        name = self._current_name()
        identity = self._commit_identity(name) if name else None
        return (name, identity) if name and identity else None

    def suggest(self, field: str, prefix: str, limit: int = 10) -> list[tuple[str, int]]:
        if field not in TOKEN_FIELDS or not prefix:
            return []
        searcher = self._current().searcher()
        return [(term, freq) for term, freq in searcher.terms_with_prefix(field, prefix, limit=limit)]

    def close(self) -> None:
        self.wait_for_merges()
        with self._lock:
            self._index = None
            self._generation = None
