"""A short-lived per-process cache of search results (issue 3's load target; T29 allows 5 s of staleness).

A town's searches bunch up: the same recall, the same festival, typed by many people within seconds. Within
`SEARCH_CACHE_SECONDS` (default 2 s; 0 turns it off) an identical query is answered from memory. Everything per
request still happens per request: the search log, the pinned urgent notices (whose expiry is checked at request
time) and the page itself. The key includes the library's change counter, so a change this process indexed is
never hidden behind its own cache; a change indexed by another process shows within the cache's lifetime.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from indexer.library import Library
from indexer.search import Query, Results

MAX_ENTRIES = 512


class ResultCache:
    def __init__(self, seconds: float, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, Query], tuple[float, Results]] = OrderedDict()
        self._lock = threading.Lock()
        # Searches answered from memory and searches run, for the workers' exit log (deploy/gunicorn.conf.py).
        self.hits = 0
        self.misses = 0

    def search(self, library: Library, query: Query) -> Results:
        if self.seconds <= 0:
            return library.search(query)
        key = (library.changes, query)
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < self.seconds:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            self.misses += 1
        results = library.search(query)  # outside the lock: searches run in parallel
        with self._lock:
            self._entries[key] = (now, results)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return results
