"""A per-process cache of search results (issue 3's load target).

A town's searches bunch up: the same recall, the same festival, typed by many people. An identical query is
answered from memory for as long as its result cannot have changed. The embedded engine says when that is
(`SearchEngine.version()`: any process's commit, or a rebuild, changes it), so its results are shared until the
index changes, at most `VERSIONED_MAX_AGE`; an engine that cannot tell cheaply (Elasticsearch) has its results
shared for `SEARCH_CACHE_SECONDS` (default 2 s; T29 allows 5 s of staleness). 0 turns the cache off.

Everything per request still happens per request: the search log, the pinned urgent notices (whose expiry is
checked at request time) and the page itself. The key also holds the library's change counter, so a change this
process indexed is never hidden behind its own cache, whatever the engine. Memory is bounded by `MAX_ENTRIES`
(`SEARCH_CACHE_ENTRIES`), least recently used first out: 2048 results of about 16 KiB, some 32 MiB per process.
A search box's long tail outgrows 512 (benchmarks/api_load.py at 100k records: 67 % answered with 512, 82 % with
2048). Results of an older index are dropped as soon as a newer one is seen, and results past their lifetime as
new ones come in: they can never be served again, and an index that changes every few seconds (pushed notices)
would otherwise keep the cache full of them.

Behind it, the embedded engine's results are shared by the server's worker processes (`shared`,
search_app/shared_cache.py): a search this process has not seen is looked up there before it is run, and a
result it runs is stored there for the others.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from indexer.library import Library
from indexer.search import Query, Results
from search_app.shared_cache import SharedResults

MAX_ENTRIES = 2048
# A bound on results keyed by an index version, in case a change ever went unseen.
VERSIONED_MAX_AGE = 600.0


class ResultCache:
    def __init__(self, seconds: float, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic, shared: SharedResults | None = None) -> None:
        self.seconds = seconds
        self.shared = shared  # the workers' common results, asked when this process has none
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Hashable, int, Query], tuple[float, Results]] = OrderedDict()
        self._lock = threading.Lock()
        self._index_state: tuple[Hashable, int] | None = None  # (version, changes) of the newest entry
        # Searches answered from memory and searches run, for the workers' exit log (deploy/gunicorn.conf.py).
        self.hits = 0
        self.shared_hits = 0
        self.misses = 0

    def search(self, library: Library, query: Query) -> Results:
        if self.seconds <= 0:
            return library.search(query)
        # Read before searching: a commit in between makes the result newer than its key, never older.
        version = library.engine.version()
        lifetime = self.seconds if version is None else VERSIONED_MAX_AGE
        key = (version, library.changes, query)
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < lifetime:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
        shared = self.shared if version is not None else None
        results = shared.get(version, query, lifetime) if shared is not None else None
        if results is not None:
            with self._lock:
                self.shared_hits += 1
        else:
            with self._lock:
                self.misses += 1
            results = library.search(query)  # outside the lock: searches run in parallel
            if shared is not None:
                shared.put(version, query, results)
        with self._lock:
            if version is not None and self._index_state != key[:2]:
                # A newer index (or, in a search that raced a commit, an older one: its entries go, once).
                self._entries.clear()
                self._index_state = key[:2]
            self._entries[key] = (now, results)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            self._drop_expired(now, lifetime)
        return results

    def _drop_expired(self, now: float, lifetime: float) -> None:
        # Least recently used first; an entry used since its store may sit behind an expired one, and stays for
        # the next store or the LRU bound.
        while self._entries:
            stored, _ = next(iter(self._entries.values()))
            if now - stored < lifetime:
                return
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
