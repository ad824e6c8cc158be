"""The circuit breaker in front of a search engine (T28).

The failing engine here is a small hand-written implementation of our own SearchEngine protocol that raises
EngineError on demand; it stands in for "an engine that cannot answer", not for Elasticsearch. Pass-through is
checked on the real tantivy engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from indexer.engines.base import (
    TOKEN_FIELDS,
    EngineError,
    EngineQuery,
    EngineResult,
    FieldMatch,
    IndexDocument,
    Progress,
    SearchEngine,
    TermClause,
)
from indexer.engines.breaker import (
    FAILURE_THRESHOLD,
    TRIAL_RETRY_AFTER,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
)
from indexer.engines.tantivy_engine import TantivyEngine

COOL_DOWN = 30.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FlakyEngine:
    """A SearchEngine that answers, fails with EngineError, or blocks, as the test says."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False
        self.failing = False
        self.error: BaseException | None = None  # raised instead of EngineError when set
        self.gate: threading.Event | None = None  # when set, calls wait for it before answering
        self.entered = threading.Event()
        self._count_lock = threading.Lock()

    def _answer(self, value: int) -> int:
        with self._count_lock:
            self.calls += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(timeout=10)
        if self.error is not None:
            raise self.error
        if self.failing:
            raise EngineError("接続できません（テスト）")
        return value

    def upsert(self, documents: Iterable[IndexDocument]) -> int:
        return self._answer(len(list(documents)))

    def delete(self, ids_with_revision: Iterable[tuple[str, int]]) -> int:
        return self._answer(len(list(ids_with_revision)))

    def search(self, query: EngineQuery) -> EngineResult:
        return EngineResult(total=self._answer(0), hits=[])

    def count(self) -> int:
        return self._answer(0)

    def versions(self) -> dict[str, int]:
        self._answer(0)
        return {}

    def rebuild(self, documents: Iterable[IndexDocument], progress: Progress | None = None) -> int:
        return self._answer(len(list(documents)))

    def suggest(self, field: str, prefix: str, limit: int = 10) -> list[tuple[str, int]]:
        self._answer(0)
        return []

    def version(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def flaky() -> FlakyEngine:
    return FlakyEngine()


@pytest.fixture()
def breaker(flaky: FlakyEngine, clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(flaky, reset_timeout=COOL_DOWN, clock=clock)


def fail_times(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(EngineError) as caught:
            breaker.search(EngineQuery())
        assert not isinstance(caught.value, CircuitOpenError)


def open_circuit(breaker: CircuitBreaker, flaky: FlakyEngine) -> None:
    flaky.failing = True
    fail_times(breaker, FAILURE_THRESHOLD)
    assert breaker.state is CircuitState.OPEN


def doc(record_id: str, title: str, revision: int = 1) -> IndexDocument:
    tokens = {name: "" for name in TOKEN_FIELDS}
    tokens["title_c"] = title
    return IndexDocument(
        id=record_id,
        revision=revision,
        kind="notice",
        title=title,
        body="",
        url=None,
        provenance="maker",
        organization=None,
        region=None,
        categories=(),
        published_at=None,
        event_at=None,
        verified_at=None,
        details={},
        tokens=tokens,
    )


# --- pass-through -------------------------------------------------------------------------------------------


@pytest.fixture()
def tantivy_breaker(tmp_path: Path) -> Iterator[CircuitBreaker]:
    wrapped = CircuitBreaker(TantivyEngine(tmp_path / "index"))
    yield wrapped
    wrapped.close()


def test_wraps_the_real_engine_transparently(tantivy_breaker: CircuitBreaker) -> None:
    engine: SearchEngine = tantivy_breaker
    assert isinstance(engine, SearchEngine)
    assert engine.name == "tantivy"
    assert engine.upsert([doc("a", "電池 回収"), doc("b", "電池 発熱", revision=2)]) == 2
    assert engine.count() == 2
    assert engine.versions() == {"a": 1, "b": 2}
    query = EngineQuery(must=((TermClause((FieldMatch("title_c", ("回収",)),)),),))
    assert [hit.id for hit in engine.search(query).hits] == ["a"]
    assert engine.suggest("title_c", "電") == [("電池", 2)]
    assert engine.delete([("a", 2)]) == 1
    assert engine.count() == 1
    progress: list[int] = []
    assert engine.rebuild([doc("c", "図書館")], progress.append) == 1
    assert engine.versions() == {"c": 1}
    assert sum(progress) == 1
    assert tantivy_breaker.state is CircuitState.CLOSED


# --- opening ------------------------------------------------------------------------------------------------


def test_opens_after_five_consecutive_failures_and_then_fails_fast(
    breaker: CircuitBreaker, flaky: FlakyEngine
) -> None:
    flaky.failing = True
    fail_times(breaker, FAILURE_THRESHOLD - 1)
    assert breaker.state is CircuitState.CLOSED
    fail_times(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert flaky.calls == FAILURE_THRESHOLD

    with pytest.raises(CircuitOpenError) as caught:
        breaker.search(EngineQuery())
    assert flaky.calls == FAILURE_THRESHOLD  # the engine was not asked
    assert caught.value.retry_after == COOL_DOWN
    assert isinstance(caught.value, EngineError)  # callers that show 503 for EngineError need no change
    assert "一時停止" in str(caught.value) and "30 秒後" in str(caught.value)


def test_every_operation_is_guarded(breaker: CircuitBreaker, flaky: FlakyEngine) -> None:
    open_circuit(breaker, flaky)
    operations = [
        lambda: breaker.upsert([doc("a", "x")]),
        lambda: breaker.delete([("a", 1)]),
        lambda: breaker.search(EngineQuery()),
        breaker.count,
        breaker.versions,
        lambda: breaker.rebuild([]),
        lambda: breaker.suggest("title_c", "x"),
    ]
    for operation in operations:
        with pytest.raises(CircuitOpenError):
            operation()
    assert flaky.calls == FAILURE_THRESHOLD
    breaker.close()
    assert flaky.closed  # closing releases resources even while open


def test_a_success_resets_the_count(breaker: CircuitBreaker, flaky: FlakyEngine) -> None:
    flaky.failing = True
    fail_times(breaker, FAILURE_THRESHOLD - 1)
    flaky.failing = False
    assert breaker.count() == 0
    flaky.failing = True
    fail_times(breaker, FAILURE_THRESHOLD - 1)
    assert breaker.state is CircuitState.CLOSED


def test_errors_that_are_not_engine_errors_pass_through_uncounted(
    breaker: CircuitBreaker, flaky: FlakyEngine
) -> None:
    flaky.error = ValueError("bad query")
    for _ in range(FAILURE_THRESHOLD * 2):
        with pytest.raises(ValueError):
            breaker.search(EngineQuery())
    assert breaker.state is CircuitState.CLOSED


def test_retry_after_counts_down_in_whole_seconds(
    breaker: CircuitBreaker, flaky: FlakyEngine, clock: Clock
) -> None:
    open_circuit(breaker, flaky)
    clock.advance(COOL_DOWN - 10.5)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.count()
    assert caught.value.retry_after == 11
    clock.advance(10.4)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.count()
    assert caught.value.retry_after == 1  # never 0: Retry-After 0 would invite an immediate retry


def test_open_searches_answer_at_once_while_the_engine_hangs(flaky: FlakyEngine) -> None:
    """T28: with the engine hanging, an open circuit answers searches within 2 s (here: at once)."""
    breaker = CircuitBreaker(flaky, reset_timeout=COOL_DOWN)  # the real clock
    open_circuit(breaker, flaky)
    flaky.gate = threading.Event()  # any call that reached the engine now would hang for 10 s
    started = time.monotonic()
    for _ in range(100):
        with pytest.raises(CircuitOpenError):
            breaker.search(EngineQuery())
    assert time.monotonic() - started < 2.0
    assert flaky.calls == FAILURE_THRESHOLD


# --- half-open ----------------------------------------------------------------------------------------------


def test_after_the_cool_down_a_successful_trial_closes_the_circuit(
    breaker: CircuitBreaker, flaky: FlakyEngine, clock: Clock
) -> None:
    open_circuit(breaker, flaky)
    clock.advance(COOL_DOWN)
    assert breaker.state is CircuitState.HALF_OPEN
    flaky.failing = False
    assert breaker.count() == 0
    assert breaker.state is CircuitState.CLOSED
    # Closed again means a fresh count: it takes five failures to open once more.
    flaky.failing = True
    fail_times(breaker, FAILURE_THRESHOLD - 1)
    assert breaker.state is CircuitState.CLOSED


def test_a_failed_trial_opens_the_circuit_for_another_cool_down(
    breaker: CircuitBreaker, flaky: FlakyEngine, clock: Clock
) -> None:
    open_circuit(breaker, flaky)
    clock.advance(COOL_DOWN + 5)
    fail_times(breaker, 1)  # the trial reached the engine and failed
    assert flaky.calls == FAILURE_THRESHOLD + 1
    with pytest.raises(CircuitOpenError) as caught:
        breaker.count()
    assert caught.value.retry_after == COOL_DOWN
    assert flaky.calls == FAILURE_THRESHOLD + 1


def test_only_one_trial_at_a_time(breaker: CircuitBreaker, flaky: FlakyEngine, clock: Clock) -> None:
    open_circuit(breaker, flaky)
    clock.advance(COOL_DOWN)
    flaky.failing = False
    flaky.gate = threading.Event()
    flaky.entered.clear()
    answers: list[int] = []
    trial = threading.Thread(target=lambda: answers.append(breaker.count()))
    trial.start()
    try:
        assert flaky.entered.wait(timeout=5)
        with pytest.raises(CircuitOpenError) as caught:
            breaker.count()
        assert caught.value.retry_after == TRIAL_RETRY_AFTER
    finally:
        flaky.gate.set()
        trial.join(timeout=5)
    assert answers == [0]
    assert breaker.state is CircuitState.CLOSED
    assert flaky.calls == FAILURE_THRESHOLD + 1


def test_a_trial_that_hangs_does_not_hold_the_circuit_open_forever(
    breaker: CircuitBreaker, flaky: FlakyEngine, clock: Clock
) -> None:
    open_circuit(breaker, flaky)
    clock.advance(COOL_DOWN)
    flaky.failing = False
    hang = threading.Event()
    flaky.gate = hang
    flaky.entered.clear()
    stuck = threading.Thread(target=breaker.count)
    stuck.start()
    try:
        assert flaky.entered.wait(timeout=5)
        clock.advance(COOL_DOWN)  # the first trial has now run for a whole cool-down
        flaky.gate = None
        assert breaker.count() == 0  # a second trial is let through, and it succeeds
        assert breaker.state is CircuitState.CLOSED
    finally:
        hang.set()
        stuck.join(timeout=15)


def test_a_trial_ending_in_another_error_frees_the_trial_slot(
    breaker: CircuitBreaker, flaky: FlakyEngine, clock: Clock
) -> None:
    open_circuit(breaker, flaky)
    clock.advance(COOL_DOWN)
    flaky.error = ValueError("bad query")
    with pytest.raises(ValueError):
        breaker.search(EngineQuery())
    assert breaker.state is CircuitState.HALF_OPEN
    flaky.error = None
    flaky.failing = False
    assert breaker.count() == 0  # the next call is the trial, not refused
    assert breaker.state is CircuitState.CLOSED


# --- threads ------------------------------------------------------------------------------------------------


def test_concurrent_failures_are_all_counted(flaky: FlakyEngine) -> None:
    threads, per_thread = 8, 200
    breaker = CircuitBreaker(flaky, failure_threshold=threads * per_thread)
    flaky.failing = True
    start = threading.Barrier(threads)

    def hammer() -> None:
        start.wait()
        for _ in range(per_thread):
            with pytest.raises(EngineError):
                breaker.count()

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    # Opening exactly at threshold = total calls proves that no failure was lost between threads.
    assert flaky.calls == threads * per_thread
    assert breaker.state is CircuitState.OPEN


def test_rejects_meaningless_settings(flaky: FlakyEngine) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(flaky, failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(flaky, reset_timeout=0)
