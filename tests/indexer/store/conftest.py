"""A migrated store on each backend (the `database_url` fixture runs every test on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from indexer.store import RecordRow, Store, append_revision


@pytest.fixture()
def store(database_url: str) -> Iterator[Store]:
    store = Store.open(database_url, migrate=True)
    yield store
    store.dispose()


@pytest.fixture()
def make_record(store: Store) -> Callable[..., None]:
    """Write a record with n revisions as ingest does: the row and its revisions in one transaction."""

    def make(record_id: str = "rec-1", revisions: int = 1) -> None:
        with store.session() as session:
            session.add(RecordRow(id=record_id, kind="notice", title="回収のお知らせ", status="published"))
            for number in range(1, revisions + 1):
                append_revision(
                    session, record_id, {"title": f"回収のお知らせ 第{number}版"}, "import", f"第{number}版"
                )

    return make
