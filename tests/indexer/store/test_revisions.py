"""Revision history (T30): numbered without gaps, hash-chained, tamper-evident, append-only, concurrent."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Executable, delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from indexer.store import (
    RecordRow,
    RevisionRow,
    StaleRevision,
    Store,
    append_revision,
    content_hash_of,
    verify_chain,
)
from indexer.store.models import chain_hash_of


def test_append_numbers_hashes_and_chains(store: Store) -> None:
    versions = [{"title": "図書館だより", "版": n} for n in (1, 2, 3)]
    with store.session() as session:
        session.add(RecordRow(id="page:1", kind="page", title="図書館だより", status="published"))
        for number, data in enumerate(versions, start=1):
            append_revision(session, "page:1", data, author="user:7", summary=f"第{number}版")

    with store.session(readonly=True) as session:
        revisions = session.scalars(select(RevisionRow).order_by(RevisionRow.revision)).all()
        record = session.get_one(RecordRow, "page:1")
        assert [r.revision for r in revisions] == [1, 2, 3]
        assert [r.data for r in revisions] == versions
        assert record.revision == 3
        assert record.data == versions[-1]
        assert record.content_hash == revisions[-1].content_hash == content_hash_of(versions[-1])
        assert record.updated_at == revisions[-1].created_at
        previous = ""
        for revision in revisions:
            assert (revision.author, revision.created_at.tzinfo) == ("user:7", UTC)
            expected = chain_hash_of(previous, revision.content_hash, revision.author, revision.created_at)
            assert revision.chain_hash == expected
            previous = revision.chain_hash
        assert verify_chain(session, "page:1")


def test_hashes_survive_the_backends_json_storage(store: Store, make_record: Callable[..., None]) -> None:
    make_record("rec-1")
    # JSONB stores numbers as decimals: 1e+20 reads back as an int, -0.0 as 0.0; the hash must not change.
    data: dict[str, Any] = {"big": 1e20, "zero": -0.0, "lat": 35.6812, "small": 1e-05, "n": 10**30, "和": "ｱ"}
    with store.session() as session:
        append_revision(session, "rec-1", data, "crawler:3", "数値の保存")
    with store.session(readonly=True) as session:
        assert verify_chain(session, "rec-1")


def test_hash_is_of_content_not_of_key_order() -> None:
    assert content_hash_of({"a": 1, "b": [1.0, "卵"]}) == content_hash_of({"b": [1, "卵"], "a": 1})
    assert content_hash_of({"a": 1}) != content_hash_of({"a": 2})


def test_stale_edit_is_refused_and_writes_nothing(store: Store, make_record: Callable[..., None]) -> None:
    make_record("rec-1", revisions=2)
    with pytest.raises(StaleRevision) as refused, store.session() as session:
        append_revision(session, "rec-1", {"title": "古い版から"}, "user:1", "編集", expected_revision=1)
    assert (refused.value.expected, refused.value.current) == (1, 2)
    with store.session() as session:
        latest = append_revision(session, "rec-1", {"title": "最新"}, "user:1", "編集", expected_revision=2)
        assert latest.revision == 3


def test_append_to_a_missing_record_fails(store: Store) -> None:
    with pytest.raises(LookupError, match="missing"), store.session() as session:
        append_revision(session, "missing", {}, "user:1", "編集")


def _disable_append_only_triggers(session: Session) -> None:
    """What someone with owner rights on the database can do; the hash chain must still notice."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DROP TRIGGER revisions_no_update"))
        session.execute(text("DROP TRIGGER revisions_no_delete"))
    else:
        session.execute(text("ALTER TABLE revisions DISABLE TRIGGER USER"))


def _revision(number: int) -> ColumnElement[bool]:
    return (RevisionRow.record_id == "rec-1") & (RevisionRow.revision == number)


FORGED = {"title": "改ざん"}
TAMPERING: dict[str, Executable] = {
    "revision data": update(RevisionRow).where(_revision(2)).values(data=FORGED),
    "revision data and its content hash": update(RevisionRow)
    .where(_revision(2))
    .values(data=FORGED, content_hash=content_hash_of(FORGED)),
    "author": update(RevisionRow).where(_revision(2)).values(author="user:999"),
    "timestamp": update(RevisionRow).where(_revision(2)).values(created_at=datetime(2020, 1, 1, tzinfo=UTC)),
    "latest revision removed": delete(RevisionRow).where(_revision(3)),
    "middle revision removed": delete(RevisionRow).where(_revision(2)),
    "current data": update(RecordRow).where(RecordRow.id == "rec-1").values(data=FORGED),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_tampering_is_detected(store: Store, make_record: Callable[..., None], tampering: str) -> None:
    make_record("rec-1", revisions=3)
    make_record("rec-2", revisions=3)
    with store.session() as session:
        _disable_append_only_triggers(session)
        session.execute(TAMPERING[tampering])
    with store.session(readonly=True) as session:
        assert not verify_chain(session, "rec-1")
        assert verify_chain(session, "rec-2")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE revisions SET summary = '書き換え'",
        "UPDATE revisions SET data = data",  # even a rewrite to the same value is refused
        "DELETE FROM revisions",
        "DELETE FROM revisions WHERE revision = 1",
    ],
)
def test_revisions_cannot_be_updated_or_deleted(
    store: Store, make_record: Callable[..., None], statement: str
) -> None:
    make_record("rec-1", revisions=2)
    with pytest.raises(IntegrityError, match="append-only"), store.session() as session:
        session.execute(text(statement))
    with store.session(readonly=True) as session:
        assert verify_chain(session, "rec-1")
        summaries = session.scalars(select(RevisionRow.summary).order_by(RevisionRow.revision)).all()
        assert summaries == ["第1版", "第2版"]


def test_orm_changes_to_a_revision_are_refused(store: Store, make_record: Callable[..., None]) -> None:
    make_record("rec-1")
    with pytest.raises(IntegrityError, match="append-only"), store.session() as session:
        session.scalars(select(RevisionRow)).one().author = "someone else"


@pytest.mark.postgres
def test_truncate_is_refused_on_postgresql(postgres_url: str) -> None:
    store = Store.open(postgres_url, migrate=True)
    try:
        with pytest.raises(IntegrityError, match="append-only"), store.session() as session:
            session.execute(text("TRUNCATE revisions"))
    finally:
        store.dispose()


def test_concurrent_appends_queue_without_gaps_or_lock_errors(
    store: Store, make_record: Callable[..., None]
) -> None:
    """8 writers on one record. On SQLite, BEGIN IMMEDIATE makes them wait their turn instead of failing with
    "database is locked"; on PostgreSQL, the record's row lock does the same."""
    writers, appends = 8, 5
    make_record("rec-1")
    start = threading.Barrier(writers)

    def write(number: int) -> None:
        start.wait()
        for step in range(appends):
            with store.session() as session:
                append_revision(
                    session, "rec-1", {"writer": number, "step": step}, f"user:{number}", "同時編集"
                )

    with ThreadPoolExecutor(max_workers=writers) as pool:
        for done in [pool.submit(write, number) for number in range(writers)]:
            done.result()  # re-raises a writer's exception here

    total = 1 + writers * appends
    with store.session(readonly=True) as session:
        numbers = session.scalars(
            select(RevisionRow.revision)
            .where(RevisionRow.record_id == "rec-1")
            .order_by(RevisionRow.revision)
        ).all()
        assert numbers == list(range(1, total + 1))
        assert session.get_one(RecordRow, "rec-1").revision == total
        assert verify_chain(session, "rec-1")
