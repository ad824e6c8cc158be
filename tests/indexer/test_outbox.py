"""The outbox under engine failures: an outage waits, a broken write counts toward dead-lettering (T26, T28)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from indexer.config import Settings
from indexer.engines.base import EngineError, EngineUnavailable, IndexDocument
from indexer.engines.tantivy_engine import TantivyEngine
from indexer.ingest import ingest_record
from indexer.library import Library
from indexer.outbox import drain
from indexer.store import MAX_OUTBOX_ATTEMPTS, OutboxRow, dead_letter_count


class FailingEngine(TantivyEngine):
    """The real embedded engine, whose writes fail with a chosen error while `failure` is set."""

    failure: EngineError | None = None

    def upsert(self, documents: Iterable[IndexDocument]) -> int:
        if self.failure is not None:
            raise self.failure
        return super().upsert(documents)


@pytest.fixture()
def library(database_url: str, data_dir: Path) -> Iterator[Library]:
    settings = Settings.from_env(data_dir=data_dir, database_url=database_url)
    lib = Library.open(settings)
    lib.engine = FailingEngine(settings.index_dir)
    yield lib
    lib.close()


def commit_one(library: Library) -> None:
    with library.store.session() as session:
        ingest_record(session, {"id": "f1", "kind": "faq", "title": "粗大ごみ", "provenance": "government"},
                      author="t", summary="s")


def attempts(library: Library) -> list[int]:
    with library.store.session(readonly=True) as session:
        return list(session.scalars(select(OutboxRow.attempts).where(OutboxRow.processed_at.is_(None))))


def test_an_outage_leaves_rows_waiting_uncounted_until_the_engine_is_back(library: Library) -> None:
    commit_one(library)
    library.engine.failure = EngineUnavailable("down")
    for _ in range(MAX_OUTBOX_ATTEMPTS + 2):
        assert drain(library.store, library.engine, library.analyzer).failed == 1
    assert attempts(library) == [0]
    library.engine.failure = None
    assert drain(library.store, library.engine, library.analyzer).indexed == 1
    assert library.engine.versions() == {"f1": 1}


def test_a_write_that_keeps_failing_is_dead_lettered_and_does_not_stall_the_queue(library: Library) -> None:
    commit_one(library)
    library.engine.failure = EngineError("mapping rejected the document")
    for _ in range(MAX_OUTBOX_ATTEMPTS):
        drain(library.store, library.engine, library.analyzer)
    assert attempts(library) == [MAX_OUTBOX_ATTEMPTS]
    with library.store.session(readonly=True) as session:
        assert dead_letter_count(session) == 1
    library.engine.failure = None
    assert drain(library.store, library.engine, library.analyzer).batches == 0  # never claimed again
    assert library.reindex(workers=1) == 1  # a rebuild from SQL still brings it in
