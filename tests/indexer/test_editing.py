"""Editors' corrections on both SQL backends: revisions, per-field overrides, re-crawls, revert, retract, T30."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexer.config import Settings
from indexer.editing import (
    NoChanges,
    edit_record,
    mark_verified,
    resolve_override,
    restore_record,
    retract_record,
    revert_record,
)
from indexer.library import Library
from indexer.search import Query
from indexer.store import OutboxRow, RecordOverrideRow, RevisionRow, StaleRevision, UserRow, verify_chain
from schemas import RecordValidationError

SOURCE = "crawl:7"


def crawled(**fields: object) -> dict[str, object]:
    """A program as a crawler brings it: a source and an id inside it."""
    record: dict[str, object] = {
        "kind": "program",
        "title": "防災訓練のお知らせ",
        "body": "みなと公園で防災訓練を行います。",
        "organizer": "みなと市防災課",
        "place": "みなと公園",
        "fee": "無料",
        "provenance": "government",
        "source": SOURCE,
        "external_id": "drill-2026",
    }
    record.update(fields)
    return record


@pytest.fixture()
def library(database_url: str, data_dir: Path) -> Iterator[Library]:
    lib = Library.open(Settings.from_env(data_dir=data_dir, database_url=database_url))
    yield lib
    lib.close()


def make_editor(library: Library, name: str = "編集者") -> int:
    with library.store.session() as session:
        user = UserRow(email=f"{name}-{id(session)}@example.jp", display_name=name, role="editor")
        session.add(user)
        session.flush()
        return user.id


def overrides(library: Library, record_id: str) -> dict[str, RecordOverrideRow]:
    with library.store.session(readonly=True) as session:
        rows = session.scalars(select(RecordOverrideRow).where(RecordOverrideRow.record_id == record_id))
        return {row.field: row for row in rows}


def found(library: Library, text: str) -> list[str]:
    return [hit.id for hit in library.search(Query(text=text)).hits]


def chain_ok(library: Library, record_id: str) -> bool:
    with library.store.session(readonly=True) as session:
        return verify_chain(session, record_id)


def test_an_edit_is_a_revision_an_override_and_an_index_update(library: Library) -> None:
    record_id = library.ingest(crawled(), author=SOURCE, summary="crawl").record_id
    editor = make_editor(library)

    result = edit_record(
        library, record_id, {"place": "みなと市民体育館", "fee": "無料"},
        editor_id=editor, author=f"user:{editor}", summary="会場が変更になったため", expected_revision=1,
    )

    assert (result.revision, result.changed_fields) == (2, ("place",))  # an unchanged field is no correction
    row = library.get_record(record_id)
    assert row is not None and row.revision == 2 and row.data["place"] == "みなと市民体育館"
    with library.store.session(readonly=True) as session:
        revision = session.scalars(select(RevisionRow).where(RevisionRow.revision == 2)).one()
        assert (revision.author, revision.summary) == (f"user:{editor}", "会場が変更になったため")
        assert session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.processed_at.is_(None))) == 0
    override = overrides(library, record_id)["place"]
    assert (override.value, override.source_value, override.revision, override.editor_id) == (
        "みなと市民体育館", "みなと公園", 2, editor,
    )
    assert found(library, "体育館") == [record_id]
    assert library.engine.versions()[record_id] == 2
    assert chain_ok(library, record_id)


def test_an_edit_is_refused_without_summary_when_invalid_or_when_nothing_changes(library: Library) -> None:
    record_id = library.ingest(crawled(), author=SOURCE, summary="crawl").record_id
    kwargs = {"editor_id": None, "author": "user:1", "expected_revision": 1}
    with pytest.raises(ValueError, match="要約"):
        edit_record(library, record_id, {"place": "体育館"}, summary="  ", **kwargs)
    with pytest.raises(RecordValidationError) as invalid:
        edit_record(library, record_id, {"title": "", "url": "javascript:alert(1)"}, summary="直す", **kwargs)
    assert {error.field for error in invalid.value.errors} == {"title", "url"}
    assert all(error.message.isascii() is False for error in invalid.value.errors)  # Japanese messages
    with pytest.raises(RecordValidationError, match="編集できません"):
        edit_record(library, record_id, {"source": "other"}, summary="直す", **kwargs)
    with pytest.raises(NoChanges):
        edit_record(library, record_id, {"place": "みなと公園"}, summary="直す", **kwargs)
    row = library.get_record(record_id)
    assert row is not None and row.revision == 1 and overrides(library, record_id) == {}


def test_a_stale_edit_raises_and_writes_nothing(library: Library) -> None:
    record_id = library.ingest(crawled(), author=SOURCE, summary="crawl").record_id
    edit_record(library, record_id, {"fee": "500円"}, editor_id=None, author="a", summary="料金", expected_revision=1)
    with pytest.raises(StaleRevision) as stale:
        edit_record(library, record_id, {"fee": "300円"}, editor_id=None, author="b", summary="料金", expected_revision=1)
    assert (stale.value.expected, stale.value.current) == (1, 2)
    row = library.get_record(record_id)
    assert row is not None and row.revision == 2 and row.data["fee"] == "500円"


def test_a_recrawl_keeps_the_correction_and_flags_a_changed_source(library: Library) -> None:
    record_id = library.ingest(crawled(), author=SOURCE, summary="crawl").record_id
    edit_record(
        library, record_id, {"place": "みなと市民体育館"},
        editor_id=None, author="user:1", summary="会場の訂正", expected_revision=1,
    )

    # The same source content again: nothing to do, no revision, nothing flagged.
    assert library.ingest(crawled(), author=SOURCE, summary="crawl").action == "unchanged"
    assert overrides(library, record_id)["place"].source_changed is False
    # A writer that derives its data from the record itself (notice clustering, expiry) is no changed source.
    row = library.get_record(record_id)
    assert row is not None
    assert library.ingest({**row.data, "tags": ["防災"]}, author="system", summary="derived").action == "updated"
    assert overrides(library, record_id)["place"].source_changed is False

    # The source changes another field and the corrected one.
    outcome = library.ingest(crawled(fee="300円", place="みなと第二公園"), author=SOURCE, summary="crawl")
    assert (outcome.action, outcome.revision) == ("updated", 4)
    row = library.get_record(record_id)
    assert row is not None
    assert row.data["fee"] == "300円"  # the source's field is updated
    assert row.data["place"] == "みなと市民体育館"  # the correction is kept
    override = overrides(library, record_id)["place"]
    assert (override.source_changed, override.source_latest) == (True, "みなと第二公園")
    assert found(library, "体育館") == [record_id]
    assert chain_ok(library, record_id)

    # The editor takes the source's new value: a revision, and the field follows the source again.
    result = resolve_override(library, record_id, "place", keep=False, editor_id=None, author="user:1")
    assert result.revision == 5
    row = library.get_record(record_id)
    assert row is not None and row.data["place"] == "みなと第二公園"
    assert "place" not in overrides(library, record_id)
    assert library.ingest(crawled(fee="300円", place="みなと第三公園"), author=SOURCE, summary="crawl").revision == 6
    row = library.get_record(record_id)
    assert row is not None and row.data["place"] == "みなと第三公園"


def test_keeping_a_correction_compares_later_crawls_with_the_new_source_value(library: Library) -> None:
    record_id = library.ingest(crawled(), author=SOURCE, summary="crawl").record_id
    edit_record(library, record_id, {"fee": "無料（要予約）"}, editor_id=None, author="a", summary="s", expected_revision=1)
    library.ingest(crawled(fee="無料・予約不要"), author=SOURCE, summary="crawl")
    assert overrides(library, record_id)["fee"].source_changed is True

    result = resolve_override(library, record_id, "fee", keep=True, editor_id=None, author="a")
    assert result.changed_fields == ()  # the record does not change
    override = overrides(library, record_id)["fee"]
    assert (override.source_changed, override.source_value, override.value) == (False, "無料・予約不要", "無料（要予約）")
    library.ingest(crawled(fee="無料・予約不要"), author=SOURCE, summary="crawl")
    assert overrides(library, record_id)["fee"].source_changed is False
    with pytest.raises(LookupError):
        resolve_override(library, record_id, "fee", keep=True, editor_id=None, author="a")


def test_revert_makes_a_new_revision_with_the_old_content(library: Library) -> None:
    record_id = library.ingest(crawled(), author=SOURCE, summary="crawl").record_id
    edit_record(library, record_id, {"fee": "500円"}, editor_id=None, author="a", summary="1", expected_revision=1)
    edit_record(library, record_id, {"title": "防災訓練（中止）"}, editor_id=None, author="b", summary="2", expected_revision=2)

    result = revert_record(library, record_id, 1, editor_id=None, author="c", expected_revision=3)

    assert result.revision == 4
    with library.store.session(readonly=True) as session:
        history = dict(session.execute(select(RevisionRow.revision, RevisionRow.data).where(RevisionRow.record_id == record_id)).all())
        summary = session.scalar(select(RevisionRow.summary).where(RevisionRow.revision == 4))
    assert sorted(history) == [1, 2, 3, 4]  # nothing rewritten
    assert history[4] == history[1] and history[3]["title"] == "防災訓練（中止）"
    assert summary == "第1版に戻しました"
    # Back to what the source said: no correction remains to protect.
    assert overrides(library, record_id) == {}
    assert found(library, "防災訓練") == [record_id]
    assert chain_ok(library, record_id)
    with pytest.raises(LookupError):
        revert_record(library, record_id, 9, editor_id=None, author="c")


def test_retract_takes_the_record_out_of_search_and_restore_brings_it_back(library: Library) -> None:
    record_id = library.ingest(crawled(), author=SOURCE, summary="crawl").record_id
    assert found(library, "防災訓練") == [record_id]
    with pytest.raises(ValueError, match="理由"):
        retract_record(library, record_id, editor_id=None, author="a", summary="")

    retracted = retract_record(library, record_id, editor_id=None, author="a", summary="重複した記録のため")
    assert (retracted.revision, retracted.status) == (2, "retracted")
    assert found(library, "防災訓練") == []
    row = library.get_record(record_id)
    assert row is not None and row.status == "retracted"
    # A re-crawl does not republish what an editor withdrew.
    library.ingest(crawled(fee="300円"), author=SOURCE, summary="crawl")
    assert found(library, "防災訓練") == []
    assert library.get_record(record_id).status == "retracted"  # type: ignore[union-attr]

    restored = restore_record(library, record_id, editor_id=None, author="a")
    assert restored.status == "published"
    assert found(library, "防災訓練") == [record_id]
    assert library.engine.versions()[record_id] == restored.revision
    assert chain_ok(library, record_id)


def test_mark_verified_sets_the_date_as_a_revision_that_survives_a_recrawl(library: Library) -> None:
    from datetime import UTC, datetime

    record_id = library.ingest(crawled(), author=SOURCE, summary="crawl").record_id
    when = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    result = mark_verified(library, record_id, editor_id=None, author="a", verified_at=when)
    assert result.changed_fields == ("verified_at",)
    row = library.get_record(record_id)
    assert row is not None and row.data["verified_at"] == "2026-11-23T12:00:00+09:00"
    library.ingest(crawled(fee="300円"), author=SOURCE, summary="crawl")
    row = library.get_record(record_id)
    assert row is not None and row.data["verified_at"] == "2026-11-23T12:00:00+09:00" and row.data["fee"] == "300円"


def test_t30_concurrent_editors_one_wins_per_base_revision_nothing_lost(library: Library) -> None:
    """20 editors save one record at once, each on the revision it read; the losers re-read and try again."""
    record_id = library.ingest(crawled(), author=SOURCE, summary="crawl").record_id
    editors = 20
    start = threading.Barrier(editors)
    lock = threading.Lock()
    wins: list[tuple[int, int]] = []  # (editor, base revision)
    stale: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def editor(number: int) -> None:
        try:
            start.wait()
            while True:
                row = library.get_record(record_id)
                assert row is not None
                base, tags = row.revision, row.data["tags"]
                try:
                    edit_record(
                        library, record_id, {"tags": [*tags, f"editor-{number}"]},
                        editor_id=None, author=f"user:{number}", summary=f"タグを追加（{number}）",
                        expected_revision=base,
                    )
                except StaleRevision:
                    with lock:
                        stale.append((number, base))
                    continue
                with lock:
                    wins.append((number, base))
                return
        except Exception as exc:  # noqa: BLE001  (reported below: a thread's failure must fail the test)
            errors.append(exc)

    threads = [threading.Thread(target=editor, args=(n,)) for n in range(editors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    bases = sorted(base for _, base in wins)
    assert bases == list(range(1, editors + 1))  # exactly one winner per base revision
    assert all(base in bases for _, base in stale)  # every loser lost to a revision that won
    assert len({number for number, _ in wins}) == editors
    row = library.get_record(record_id)
    assert row is not None and row.revision == editors + 1
    assert sorted(row.data["tags"]) == sorted(f"editor-{n}" for n in range(editors))  # nothing lost
    assert chain_ok(library, record_id)
    assert library.engine.versions()[record_id] == editors + 1
