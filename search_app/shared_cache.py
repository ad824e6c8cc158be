"""Search results shared by every worker process of one server (behind search_app/cache.py's per-process cache).

gunicorn runs several worker processes, and each one's own cache learns a town's popular searches separately:
with two workers, a repeat has about even odds of landing on the worker that has not seen it yet. Results of
the embedded engine are keyed on its index version, which is the same token in every process reading that
index (tantivy's generation and commit), so one worker's result is another's for as long as that version is
current. They are kept in a SQLite file beside the index: any number of readers at once (WAL), no server.

A cache, not a store: nothing here is durable (synchronous=OFF; a crash may lose the last rows, never the
library's data), every failure (a busy writer, a full disk, a damaged file) is a miss and a search, and rows of
an older index version are deleted as soon as a worker stores a result of a newer one. A row (the result as
plain tuples, pickled and compressed: about 1.3 KiB) is signed with the app's secret key and read back only if
the signature matches, because rows are unpickled: a file anything else wrote is never turned into objects.
The rows are bounded (`SEARCH_CACHE_SHARED_ENTRIES`), oldest out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import os
import pickle
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from indexer.analysis import QueryTerm
from indexer.search import FacetValue, Hit, Query, Results

log = logging.getLogger(__name__)

MAX_ROWS = 8192
# Rows are deleted down to the bound every this many stores by one process, not on each: one DELETE per batch.
TRIM_EVERY = 64
BUSY_TIMEOUT_MS = 20  # a writer waits this long for another; past it, the result is simply not shared
SIGNATURE_BYTES = 16

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key BLOB PRIMARY KEY,
    version TEXT NOT NULL,
    stored REAL NOT NULL,
    data BLOB NOT NULL
)
"""


def _format() -> bytes:
    """The shape of the classes a row is rebuilt into: a row another build wrote, with other fields, is another
    key (it would otherwise be rebuilt into objects with fields missing or in the wrong place)."""
    shapes = [(cls.__qualname__, [f.name for f in dataclasses.fields(cls)])
              for cls in (Results, Hit, FacetValue, Query, QueryTerm)]
    return hashlib.blake2b(repr(shapes).encode(), digest_size=8).digest()


FORMAT = _format()
_HIT_FIELDS = tuple(f.name for f in dataclasses.fields(Hit) if f.init)
_QUERY_FIELDS = tuple(f.name for f in dataclasses.fields(Query))


def _flatten(results: Results) -> tuple[Any, ...]:
    """Results as plain tuples: pickle walks a slotted dataclass in Python (dataclasses' __getstate__, most of a
    store's cost), plain tuples in C."""
    return (
        tuple(getattr(results.query, name) for name in _QUERY_FIELDS),
        results.total,
        results.took_ms,
        [tuple(getattr(hit, name) for name in _HIT_FIELDS) for hit in results.hits],
        {name: [(v.value, v.label, v.count) for v in values] for name, values in results.facets.items()},
        results.relaxed,
        results.terms,
    )


def _rebuild(state: tuple[Any, ...]) -> Results:
    query, total, took_ms, hits, facets, relaxed, terms = state
    return Results(
        query=Query(*query),
        total=total,
        took_ms=took_ms,
        hits=[Hit(*hit) for hit in hits],
        facets={name: [FacetValue(*value) for value in values] for name, values in facets.items()},
        relaxed=relaxed,
        terms=terms,
    )



class SharedResults:
    def __init__(self, path: Path, secret: str | bytes, max_rows: int = MAX_ROWS,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.max_rows = max_rows
        self.clock = clock  # wall clock: rows are compared across processes
        key = secret.encode() if isinstance(secret, str) else secret
        self._key = hashlib.blake2b(key, digest_size=32, person=b"result-cache").digest()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._version_stored: str | None = None  # the newest version this process stored a result for
        self._stores = 0
        self._broken = False

    def get(self, version: Hashable, query: Query, max_age: float) -> Results | None:
        if self._broken:
            return None
        version_text = repr(version)
        try:
            row = self._connection().execute(
                "SELECT stored, data FROM results WHERE key = ?",
                (self._row_key(version_text, query),),
            ).fetchone()
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return None
        if row is None or self.clock() - row[0] >= max_age:
            return None
        return self._decode(row[1])

    def put(self, version: Hashable, query: Query, results: Results) -> None:
        if self._broken:
            return
        version_text = repr(version)
        data = zlib.compress(pickle.dumps(_flatten(results), protocol=pickle.HIGHEST_PROTOCOL), 1)
        with self._lock:
            newer_version = version_text != self._version_stored
            self._version_stored = version_text
            self._stores += 1
            trim = self._stores % TRIM_EVERY == 0
        try:
            connection = self._connection()
            with connection:
                if newer_version:  # results of any other version can never be served again
                    connection.execute("DELETE FROM results WHERE version != ?", (version_text,))
                connection.execute(
                    "INSERT OR REPLACE INTO results (key, version, stored, data) VALUES (?, ?, ?, ?)",
                    (self._row_key(version_text, query), version_text, self.clock(), self._sign(data) + data),
                )
                if trim:  # REPLACE gives a row a new rowid: the lowest are the oldest stores
                    connection.execute(
                        "DELETE FROM results WHERE rowid <= "
                        "(SELECT rowid FROM results ORDER BY rowid DESC LIMIT 1 OFFSET ?)",
                        (self.max_rows,),
                    )
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                self._failed(exc)
            # busy: another worker is writing; this result is not shared, nothing else changes
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)

    def __len__(self) -> int:
        return int(self._connection().execute("SELECT count(*) FROM results").fetchone()[0])

    def _row_key(self, version_text: str, query: Query) -> bytes:
        return hashlib.blake2b(FORMAT + repr((version_text, query)).encode(), digest_size=16).digest()

    def _sign(self, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=self._key, digest_size=SIGNATURE_BYTES).digest()

    def _decode(self, blob: bytes) -> Results | None:
        signature, data = blob[:SIGNATURE_BYTES], blob[SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(data)):
            log.warning("shared result cache: a row with a wrong signature in %s was ignored", self.path)
            return None
        try:
            return _rebuild(pickle.loads(zlib.decompress(data)))
        except Exception:  # a row this build cannot read: a miss, never an error page
            log.warning("shared result cache: a row in %s could not be read", self.path, exc_info=True)
            return None

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread, and none carried across a fork: sqlite3 connections are neither.
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            return connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = self._open()
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:  # not a database (a damaged file): only a cache, so start afresh
            log.warning("shared result cache %s could not be read (%s): made anew", self.path, exc)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            connection = self._open()
        self._local.connection = connection
        self._local.pid = os.getpid()
        return connection

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute(SCHEMA)
        except sqlite3.Error:
            connection.close()
            raise
        connection.isolation_level = ""  # `with connection:` commits a store's statements together
        return connection

    def _failed(self, exc: Exception) -> None:
        # Off for this process: searches go on uncached-across-workers, and the log says why once.
        if not self._broken:
            self._broken = True
            log.warning("shared result cache %s is off in this process: %s", self.path, exc)
