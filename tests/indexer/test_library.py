"""Ingest, import, outbox and reindex on both SQL backends (SQLite file and real PostgreSQL)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexer.config import Settings
from indexer.library import Library
from indexer.search import Query
from indexer.store import OutboxRow, RevisionRow, verify_chain


def notice(record_id: str | None = None, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "kind": "notice",
        "title": "モバイルバッテリー回収",
        "body": "発熱のおそれがあります。",
        "maker": "サンプル電機",
        "product": "ポケットチャージ",
        "hazard": "発熱",
        "action": "使用を中止してください",
        "provenance": "maker",
    }
    if record_id:
        record["id"] = record_id
    record.update(fields)
    return record


def jsonl(*lines: object) -> io.StringIO:
    return io.StringIO("".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines))


@pytest.fixture()
def library(database_url: str, data_dir: Path) -> Iterator[Library]:
    lib = Library.open(Settings.from_env(data_dir=data_dir, database_url=database_url))
    yield lib
    lib.close()


def assert_index_matches_store(library: Library) -> None:
    """T25's convergence check: every published record indexed at its current revision, nothing else."""
    with library.store.session(readonly=True) as session:
        from indexer.store import RecordRow

        expected = dict(
            session.execute(select(RecordRow.id, RecordRow.revision).where(RecordRow.status == "published")).all()
        )
    assert library.engine.versions() == expected


def test_import_reports_each_bad_line_and_keeps_the_good_ones(library: Library) -> None:
    report = library.import_lines(
        jsonl(
            notice("n1"),
            "{not json",
            notice("n2", url="javascript:alert(1)"),
            "",
            notice("n3", kind="unknown"),
            notice("n4", title="ヒーター点検"),
        ),
        author="test",
        summary="import",
    )
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert [error.line for error in report.errors] == [2, 3, 5]
    assert "JSON" in report.errors[0].reason
    assert "url" in report.errors[1].reason and "http" in report.errors[1].reason
    assert "不明な種別" in report.errors[2].reason
    assert {hit.id for hit in library.search(Query(text="")).hits} == {"n1", "n4"}


def test_reimport_is_unchanged_or_a_new_revision(library: Library) -> None:
    library.import_lines(jsonl(notice("n1")), author="a", summary="first")
    again = library.import_lines(jsonl(notice("n1")), author="a", summary="again")
    assert again.unchanged == 1
    changed = library.import_lines(jsonl(notice("n1", title="モバイルバッテリー回収（対象拡大）")), author="b", summary="更新")
    assert changed.updated == 1
    with library.store.session(readonly=True) as session:
        revisions = session.scalars(select(RevisionRow).where(RevisionRow.record_id == "n1").order_by(RevisionRow.revision)).all()
        assert [(r.revision, r.author, r.summary) for r in revisions] == [(1, "a", "first"), (2, "b", "更新")]
        assert verify_chain(session, "n1")
        assert session.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.processed_at.is_(None))) == 0
    assert library.engine.versions() == {"n1": 2}
    assert library.search(Query(text="対象拡大")).total == 1


def test_records_without_id_are_found_again_by_source_key_or_url(library: Library) -> None:
    first = library.ingest(notice(source="feed", external_id="x-1"), author="crawler", summary="s")
    again = library.ingest(notice(source="feed", external_id="x-1", body="改訂"), author="crawler", summary="s")
    assert again.record_id == first.record_id and again.action == "updated"
    page = {"kind": "page", "title": "お知らせ", "url": "HTTPS://Example.JP:443/a#top", "provenance": "government", "source": "web"}
    one = library.ingest(page, author="crawler", summary="s")
    two = library.ingest({**page, "url": "https://example.jp/a", "body": "本文"}, author="crawler", summary="s")
    assert one.record_id == two.record_id


def test_an_external_id_owned_by_another_record_is_a_reported_conflict(library: Library) -> None:
    library.import_lines(jsonl(notice("n1", source="s", external_id="e")), author="a", summary="s")
    report = library.import_lines(jsonl(notice("n2", source="s", external_id="e")), author="a", summary="s")
    assert [error.line for error in report.errors] == [1] and "n1" in report.errors[0].reason


def test_a_retracted_record_leaves_the_index_and_can_come_back(library: Library) -> None:
    library.ingest(notice("n1"), author="a", summary="s")
    library.ingest(notice("n1", status="retracted"), author="editor", summary="撤回")
    assert library.search(Query(text="バッテリー")).total == 0
    library.ingest(notice("n1"), author="editor", summary="復元")
    assert [hit.id for hit in library.search(Query(text="バッテリー")).hits] == ["n1"]
    assert_index_matches_store(library)


def test_reindex_rebuilds_from_sql_and_replays_changes_made_meanwhile(library: Library, data_dir: Path) -> None:
    library.import_lines(jsonl(*(notice(f"n{i}", title=f"回収 {i}") for i in range(30))), author="a", summary="s")
    other = Library(library.settings, library.store, library.engine)
    calls: list[int] = []

    def during_rebuild(step: int) -> None:
        calls.append(step)
        if len(calls) == 1:  # a change committed after the rebuild read its snapshot
            other.ingest(notice("late", title="あとから届いた回収"), author="a", summary="s")

    assert library.reindex(workers=1, progress=during_rebuild) == 30
    assert library.search(Query(text="あとから届いた")).total == 1
    assert_index_matches_store(library)


def test_parallel_reindex_gives_the_same_index(library: Library) -> None:
    library.import_lines(jsonl(*(notice(f"n{i}", title=f"回収 {i}") for i in range(40))), author="a", summary="s")
    assert library.reindex(workers=2) == 40
    assert_index_matches_store(library)


def test_stats(library: Library) -> None:
    library.ingest(notice("n1"), author="a", summary="s")
    figures = library.stats()
    assert figures["records"] == 1 and figures["indexed"] == 1 and figures["outbox_pending"] == 0
    assert figures["by_kind"] == {"notice": 1}


def _run_killed(script: str, env: dict[str, str], wait_for: Path | None = None) -> None:
    """Run `script` in a child and SIGKILL it (when `wait_for` appears, or let it kill itself)."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env)
    if wait_for is not None:
        deadline = time.monotonic() + 120
        while not wait_for.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=120) == -signal.SIGKILL


def test_index_converges_after_kill_9_mid_reindex_and_between_commit_and_indexing(library: Library, data_dir: Path) -> None:
    """T25: a reindex killed half-way leaves the old index serving; a process killed after its commit but
    before indexing leaves an outbox row that the next drain applies."""
    library.import_lines(jsonl(*(notice(f"n{i}", title=f"回収 {i}") for i in range(300))), author="a", summary="s")
    env = {**os.environ, "LIBRARY_DATA_DIR": str(data_dir), "LIBRARY_DATABASE_URL": library.settings.database_url}
    marker = data_dir / "rebuild-started"
    _run_killed(
        f"""
        from pathlib import Path
        from indexer.library import Library
        lib = Library.open()
        started = Path({str(marker)!r})
        lib.reindex(workers=1, progress=lambda n: started.touch())
        """,
        env,
        wait_for=marker,
    )
    assert library.search(Query(text="回収")).total == 300  # the old generation still serves
    _run_killed(
        """
        import os, signal
        from indexer.ingest import ingest_record
        from indexer.library import Library
        lib = Library.open()
        with lib.store.session() as session:
            ingest_record(session, {"id": "n0", "kind": "faq", "title": "差し替え", "provenance": "npo"},
                          author="a", summary="s")
        os.kill(os.getpid(), signal.SIGKILL)  # committed, never indexed
        """,
        env,
    )
    library.drain()
    assert library.search(Query(text="差し替え")).total == 1
    assert library.reindex(workers=1) == 300
    assert_index_matches_store(library)
    generations = sorted(p.name for p in library.settings.index_dir.glob("gen-*"))
    assert len(generations) == 1, generations  # the killed rebuild's directory was cleaned up


def test_index_pending_hands_work_to_the_dispatcher_and_falls_back_when_it_fails(library: Library) -> None:
    from indexer.store import enqueue, pending_count

    def commit_a_change(record_id: str) -> None:
        library.ingest({"id": record_id, "kind": "faq", "title": f"ゴミの出し方 {record_id}", "body": "燃えるごみは火曜日。",
                        "provenance": "government"}, author="tests", summary="setup")
        with library.store.session() as session:
            enqueue(session, record_id, 1, "upsert")

    dispatched: list[str] = []
    library.index_dispatcher = lambda: dispatched.append("drain")
    commit_a_change("faq-dispatch")
    library.index_pending()
    assert dispatched == ["drain"]
    with library.store.session(readonly=True) as session:
        assert pending_count(session) == 1  # left for the worker the dispatcher told

    def broker_down() -> None:
        raise ConnectionError("broker restarting")

    library.index_dispatcher = broker_down
    library.index_pending()
    with library.store.session(readonly=True) as session:
        assert pending_count(session) == 0  # indexed here instead
