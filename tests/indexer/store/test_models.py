"""Rows round-trip on both backends: aware UTC datetimes, JSON with Japanese text, unique source ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, StatementError

from indexer.store import EngineStateRow, RecordRow, Store

JST = timezone(timedelta(hours=9))

DATA = {
    "title": "卵・乳を含む商品の自主回収について",
    "body": "対象：賞味期限 2026年11月30日 のもの。～ 〜 ｶﾀｶﾅ 𠮷野家",
    "allergens": ["卵", "乳"],
    "price": 298,
    "location": {"lat": 35.6812, "lon": 139.7671},
    "recalled": True,
    "note": None,
}


def _record(record_id: str, **columns: object) -> RecordRow:
    values: dict[str, object] = {"kind": "notice", "title": "回収", "status": "published"} | columns
    return RecordRow(id=record_id, **values)


def test_record_round_trip(store: Store) -> None:
    created = datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=JST)
    with store.session() as session:
        session.add(
            _record(
                "notice:1",
                source="shop:12",
                external_id="R-2026-001",
                url_key="a" * 64,
                data=DATA,
                content_hash="0" * 64,
                revision=1,
                created_at=created,
                updated_at=created,
            )
        )
    with store.session(readonly=True) as session:
        row = session.execute(select(RecordRow).where(RecordRow.id == "notice:1")).scalar_one()
        assert row.data == DATA
        assert row.url_key == "a" * 64
        assert row.created_at == created
        assert row.created_at.tzinfo is UTC
        assert row.created_at.hour == 1  # 10:00 JST is 01:00 UTC
        assert row.updated_at.utcoffset() == timedelta(0)


def test_defaults_are_aware_utc(store: Store) -> None:
    before = datetime.now(UTC)
    with store.session() as session:
        session.add(_record("notice:2"))
    with store.session(readonly=True) as session:
        row = session.get_one(RecordRow, "notice:2")
        assert before <= row.created_at <= datetime.now(UTC)
        assert row.created_at.tzinfo is UTC


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"), store.session() as session:
        session.add(_record("notice:3", created_at=datetime(2026, 11, 1, 10, 0)))
        session.flush()


def test_engine_state_holds_json(store: Store) -> None:
    value = {"finished_at": "2026-11-01T01:00:00+00:00", "documents": 20000, "エンジン": "tantivy"}
    with store.session() as session:
        session.add(EngineStateRow(key="last_full_reindex", value=value))
    with store.session() as session:
        session.get_one(EngineStateRow, "last_full_reindex").value = {"documents": 20001}
    with store.session(readonly=True) as session:
        assert session.get_one(EngineStateRow, "last_full_reindex").value == {"documents": 20001}


def test_source_identity_is_unique_but_sourceless_records_are_not_constrained(store: Store) -> None:
    with store.session() as session:
        session.add_all([_record("a", source="feed:1", external_id="x"), _record("b"), _record("c")])
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(_record("d", source="feed:1", external_id="x"))
