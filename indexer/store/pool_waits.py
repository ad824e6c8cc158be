"""How long requests wait for a database connection: the pool side of T29 (no exhaustion, wait p99 <= 50 ms).

SQLAlchemy's pool events fire only once a connection has been handed out, so the wait itself is timed by a
QueuePool subclass around `_do_get`, the one place a checkout blocks: on a free connection, on opening a new one
below the overflow limit, or on another thread giving one back. A checkout that gives up after `pool_timeout`
is counted as exhaustion.

The waits go into fixed histogram buckets (as a Prometheus histogram does), so a long-lived worker keeps a
few dozen integers however many requests it serves: T29 also asks for flat memory.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

# Upper bounds in milliseconds; a wait above the last falls in the overflow bucket.
BUCKETS_MS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
)  # fmt: skip


@dataclass(frozen=True)
class PoolWaitReport:
    """One process's checkouts so far. Percentiles are bucket upper bounds: "at most this long"."""

    checkouts: int
    timeouts: int
    max_ms: float
    p50_ms: float
    p99_ms: float
    size: int
    overflow_limit: int
    peak_in_use: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "max_ms": round(self.max_ms, 3)}


class PoolWaits:
    """A thread-safe histogram of checkout waits, with the count of checkouts that timed out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(BUCKETS_MS) + 1)
        self._timeouts = 0
        self._max_ms = 0.0
        self._in_use = 0
        self._peak_in_use = 0

    def observe(self, wait_ms: float, *, timed_out: bool = False) -> None:
        with self._lock:
            self._counts[bisect_left(BUCKETS_MS, wait_ms)] += 1
            self._max_ms = max(self._max_ms, wait_ms)
            if timed_out:
                self._timeouts += 1
            else:
                self._in_use += 1
                self._peak_in_use = max(self._peak_in_use, self._in_use)

    def returned(self) -> None:
        with self._lock:
            self._in_use = max(0, self._in_use - 1)

    def _quantile(self, q: float, total: int) -> float:
        # The smallest bucket bound under which at least q of the waits fall.
        if not total:
            return 0.0
        rank = q * total
        seen = 0
        for bound, count in zip(BUCKETS_MS, self._counts, strict=False):
            seen += count
            if seen >= rank:
                return bound
        return self._max_ms

    def report(self, size: int, overflow_limit: int) -> PoolWaitReport:
        with self._lock:
            total = sum(self._counts)
            return PoolWaitReport(
                checkouts=total - self._timeouts,
                timeouts=self._timeouts,
                max_ms=self._max_ms,
                p50_ms=self._quantile(0.50, total),
                p99_ms=self._quantile(0.99, total),
                size=size,
                overflow_limit=overflow_limit,
                peak_in_use=self._peak_in_use,
            )


class TimedQueuePool(QueuePool):
    """QueuePool that records how long each checkout waited (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits = PoolWaits()

    def recreate(self) -> TimedQueuePool:
        # engine.dispose() builds a fresh pool: the figures carry over, they describe the process.
        pool = super().recreate()
        assert isinstance(pool, TimedQueuePool)
        pool.waits = self.waits
        return pool

    def _do_get(self) -> Any:
        started = time.perf_counter()
        try:
            record = super()._do_get()
        except PoolTimeout:
            self.waits.observe((time.perf_counter() - started) * 1000, timed_out=True)
            raise
        self.waits.observe((time.perf_counter() - started) * 1000)
        return record

    def _do_return_conn(self, record: Any) -> None:
        self.waits.returned()
        super()._do_return_conn(record)

    def wait_report(self) -> PoolWaitReport:
        return self.waits.report(self.size(), self._max_overflow)
