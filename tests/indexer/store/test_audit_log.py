"""The audit log is evidence (T30): the database refuses to change or remove a row, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from indexer.store import AuditRow, Store


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET outcome = 'ok'", "UPDATE audit_log SET actor = actor", "DELETE FROM audit_log"],
)
def test_audit_rows_cannot_be_updated_or_deleted(store: Store, statement: str) -> None:
    with store.session() as session:
        session.add(AuditRow(actor="user:1", action="record.edit", target="record:x", outcome="denied"))
    with pytest.raises(IntegrityError, match="append-only"), store.session() as session:
        session.execute(text(statement))
    with store.session(readonly=True) as session:
        rows = session.scalars(select(AuditRow)).all()
        assert [(r.actor, r.outcome) for r in rows] == [("user:1", "denied")]
