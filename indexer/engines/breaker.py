"""A circuit breaker in front of a search engine (T28).

When the cluster is down or hangs, every search would otherwise wait for the client's timeout and retries, and
the web threads pile up behind it. The breaker counts consecutive `EngineError`s; at the threshold it opens
and answers every call at once with `CircuitOpenError` (an `EngineError`, so callers already show a 503),
carrying `retry_after` for the Retry-After header. After the cool-down one call is let through as a trial
(half-open): success closes the circuit, failure opens it for another cool-down. Calls made while the trial
runs fail fast.

Only `EngineError` counts: it is the protocol's word for "the engine cannot answer". Anything else (a
ValueError from a bad query, say) is a bug in the caller, says nothing about the engine's health, and passes
through untouched.

State is per process (each gunicorn worker and Celery worker has its own breaker), guarded by one lock that is
never held while the wrapped engine works.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from enum import StrEnum
from typing import TypeVar

from indexer.engines.base import (
    EngineError,
    EngineQuery,
    EngineResult,
    EngineUnavailable,
    IndexDocument,
    Progress,
    SearchEngine,
)

log = logging.getLogger(__name__)

FAILURE_THRESHOLD = 5  # T28: the breaker opens after at most 5 consecutive failures
RESET_TIMEOUT = 30.0  # seconds open before a trial call is let through
# While a trial runs, the answer is known within the engine's own request timeout (2 s for a search).
TRIAL_RETRY_AFTER = 2

T = TypeVar("T")


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(EngineUnavailable):
    """The breaker is open and the engine was not called; `retry_after` is whole seconds, for Retry-After."""

    def __init__(self, engine_name: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"検索エンジン（{engine_name}）が続けて応答しなかったため、問い合わせを一時停止しています。"
            f"約 {retry_after} 秒後にもう一度お試しください"
        )


class CircuitBreaker:
    """A SearchEngine that wraps another one and stops calling it while it keeps failing."""

    def __init__(
        self,
        engine: SearchEngine,
        *,
        failure_threshold: int = FAILURE_THRESHOLD,
        reset_timeout: float = RESET_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout <= 0:
            raise ValueError("reset_timeout must be positive")
        self._engine = engine
        self.name = engine.name  # the protocol's attribute: stats and messages name the real engine
        self._threshold = failure_threshold
        self._reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None  # set while open or half-open
        self._trial_started: float | None = None  # set while a trial call is running

    @property
    def wrapped(self) -> SearchEngine:
        return self._engine

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._state(self._clock())

    def _state(self, now: float) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if now - self._opened_at < self._reset_timeout:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    # --- the state machine ----------------------------------------------------------------------------------

    def _admit(self) -> bool:
        """Whether the caller may call the engine; True means it is the half-open trial. Raises when open."""
        with self._lock:
            now = self._clock()
            if self._opened_at is None:
                return False
            remaining = self._opened_at + self._reset_timeout - now
            if remaining > 0:
                raise CircuitOpenError(self.name, max(1, math.ceil(remaining)))
            # Half-open: one trial at a time. A trial that has run longer than a whole cool-down is presumed
            # stuck (a hung connection), so it no longer blocks the next one.
            if self._trial_started is not None and now - self._trial_started < self._reset_timeout:
                raise CircuitOpenError(self.name, TRIAL_RETRY_AFTER)
            self._trial_started = now
            return True

    def _succeeded(self, trial: bool) -> None:
        with self._lock:
            if self._opened_at is not None and not trial:
                # A call admitted before the circuit opened came back late; the trial decides, not this one.
                return
            if self._opened_at is not None:
                log.info("search engine %s answers again: circuit closed", self.name)
            self._failures = 0
            self._opened_at = None
            self._trial_started = None

    def _failed(self, trial: bool, error: EngineError) -> None:
        with self._lock:
            now = self._clock()
            if trial:
                self._opened_at = now
                self._trial_started = None
                log.warning("search engine %s still failing: circuit stays open (%s)", self.name, error)
                return
            if self._opened_at is not None:
                return  # already open; a late failure must not extend the cool-down
            self._failures += 1
            if self._failures >= self._threshold:
                self._opened_at = now
                log.warning(
                    "search engine %s failed %d times in a row: circuit open for %.0f s (%s)",
                    self.name,
                    self._failures,
                    self._reset_timeout,
                    error,
                )

    def _released(self, trial: bool) -> None:
        """The call raised something other than EngineError: no verdict on the engine, free the trial slot."""
        if trial:
            with self._lock:
                self._trial_started = None

    def _call(self, operation: Callable[[], T]) -> T:
        trial = self._admit()
        try:
            result = operation()
        except EngineError as error:
            self._failed(trial, error)
            raise
        except BaseException:
            self._released(trial)
            raise
        self._succeeded(trial)
        return result

    # --- SearchEngine ---------------------------------------------------------------------------------------

    def upsert(self, documents: Iterable[IndexDocument]) -> int:
        return self._call(lambda: self._engine.upsert(documents))

    def delete(self, ids_with_revision: Iterable[tuple[str, int]]) -> int:
        return self._call(lambda: self._engine.delete(ids_with_revision))

    def search(self, query: EngineQuery) -> EngineResult:
        return self._call(lambda: self._engine.search(query))

    def count(self) -> int:
        return self._call(self._engine.count)

    def versions(self) -> dict[str, int]:
        return self._call(self._engine.versions)

    def rebuild(self, documents: Iterable[IndexDocument], progress: Progress | None = None) -> int:
        return self._call(lambda: self._engine.rebuild(documents, progress))

    def suggest(self, field: str, prefix: str, limit: int = 10) -> list[tuple[str, int]]:
        return self._call(lambda: self._engine.suggest(field, prefix, limit))

    def version(self) -> Hashable | None:
        # Local and cheap (tantivy stats two files): no reason to count against the circuit.
        return self._engine.version()

    def close(self) -> None:
        # Closing releases local resources whatever the circuit's state.
        self._engine.close()
