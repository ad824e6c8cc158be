"""Outbox (DESIGN §4, T25): written with the change, claimed oldest first, marked done or failed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from indexer.store import (
    OutboxOp,
    OutboxRow,
    RecordRow,
    Store,
    append_revision,
    claim_batch,
    enqueue,
    mark_done,
    mark_failed,
    pending_count,
)


def _enqueue(store: Store, count: int) -> list[int]:
    with store.session() as session:
        rows = [enqueue(session, f"rec-{n}", 1, OutboxOp.UPSERT) for n in range(count)]
        session.flush()
        return [row.id for row in rows]


def test_enqueue_claim_and_mark(store: Store) -> None:
    ids = _enqueue(store, 5)
    with store.session() as session:
        assert pending_count(session) == 5
        batch = claim_batch(session, 3)
        assert [row.id for row in batch] == ids[:3]
        assert {row.op for row in batch} == {"upsert"}
        mark_done(session, [row.id for row in batch])
        assert pending_count(session) == 2

    with store.session() as session:
        failing = claim_batch(session, 10)[0]
        mark_failed(session, failing.id, "ConnectionError: 検索エンジンに接続できません")

    with store.session() as session:
        again = claim_batch(session, 1)[0]
        assert again.id == failing.id  # still the oldest unprocessed row: retried first
        assert (again.attempts, again.last_error) == (1, "ConnectionError: 検索エンジンに接続できません")
        mark_done(session, [row.id for row in claim_batch(session, 10)])
        assert pending_count(session) == 0
        assert claim_batch(session, 10) == []


def test_marking_done_twice_keeps_the_first_time(store: Store) -> None:
    [row_id] = _enqueue(store, 1)
    with store.session() as session:
        mark_done(session, [row_id])
    with store.session() as session:
        first = session.get_one(OutboxRow, row_id).processed_at
        assert first is not None and first.tzinfo is UTC
        mark_done(session, [row_id])  # a duplicate delivery
    with store.session(readonly=True) as session:
        assert session.get_one(OutboxRow, row_id).processed_at == first
        assert datetime.now(UTC) >= first


def test_outbox_row_commits_and_rolls_back_with_the_change(store: Store) -> None:
    with pytest.raises(RuntimeError), store.session() as session:
        session.add(RecordRow(id="rec-1", kind="faq", title="よくある質問", status="published"))
        revision = append_revision(session, "rec-1", {"q": "貸出期間は？"}, "user:1", "新規")
        enqueue(session, "rec-1", revision.revision, "upsert")
        raise RuntimeError("crash before commit")
    with store.session() as session:
        assert pending_count(session) == 0
        assert session.get(RecordRow, "rec-1") is None

        session.add(RecordRow(id="rec-1", kind="faq", title="よくある質問", status="published"))
        revision = append_revision(session, "rec-1", {"q": "貸出期間は？"}, "user:1", "新規")
        enqueue(session, "rec-1", revision.revision, "delete")
    with store.session(readonly=True) as session:
        row = session.scalars(select(OutboxRow)).one()
        assert (row.record_id, row.revision, row.op, row.attempts) == ("rec-1", 1, "delete", 0)


def test_unknown_operations_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="reindex"), store.session() as session:
        enqueue(session, "rec-1", 1, "reindex")


@pytest.mark.postgres
def test_concurrent_claims_get_disjoint_batches_on_postgresql(postgres_url: str) -> None:
    store = Store.open(postgres_url, migrate=True)
    try:
        ids = _enqueue(store, 5)
        with store.session() as first, store.session() as second:
            first_batch = [row.id for row in claim_batch(first, 3)]
            second_batch = [row.id for row in claim_batch(second, 3)]  # does not wait for the first worker
            assert first_batch == ids[:3]
            assert second_batch == ids[3:]
            mark_done(second, second_batch)
        # The first worker ended without marking its rows: they are claimable again.
        with store.session() as session:
            assert [row.id for row in claim_batch(session, 10)] == ids[:3]
    finally:
        store.dispose()
