"""One contract every SearchEngine passes: same documents and queries, same answers.

Documents here carry hand-written tokens, so these tests pin the engine's behaviour independently of the analyzer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from indexer.analysis.normalize import normalize
from indexer.engines.base import (
    TOKEN_FIELDS,
    EngineError,
    EngineQuery,
    FieldMatch,
    Filters,
    IndexDocument,
    SearchEngine,
    TermClause,
    build_payload,
    document_from_payload,
)
from indexer.engines.tantivy_engine import TantivyEngine

JST = timezone(timedelta(hours=9))


def doc(
    record_id: str,
    title: str,
    *,
    revision: int = 1,
    kind: str = "notice",
    body: str = "",
    categories: tuple[str, ...] = (),
    provenance: str = "maker",
    organization: str | None = None,
    published: datetime | None = None,
    event: datetime | None = None,
) -> IndexDocument:
    """Tokens are the space-separated words of title/body, the same in every form, to keep tests readable."""
    tokens = {name: "" for name in TOKEN_FIELDS}
    for form in ("c", "a", "r", "b"):
        tokens[f"title_{form}"] = title
        tokens[f"body_{form}"] = body
    return IndexDocument(
        id=record_id,
        revision=revision,
        kind=kind,
        title=title,
        body=body,
        url=f"https://example.jp/{record_id}",
        provenance=provenance,
        organization=organization,
        region=None,
        categories=categories,
        published_at=published,
        event_at=event,
        verified_at=None,
        details={},
        tokens=tokens,
    )


def words(*terms: str, field: str = "title_c") -> tuple[tuple[TermClause, ...], ...]:
    return tuple((TermClause((FieldMatch(field, (term,)),)),) for term in terms)


def ids(engine: SearchEngine, query: EngineQuery) -> list[str]:
    return [hit.id for hit in engine.search(query).hits]


@pytest.fixture(params=["tantivy", "elasticsearch"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchEngine]:
    if request.param == "tantivy":
        instance = TantivyEngine(tmp_path / "index")
        yield instance
        instance.close()
        return
    import os
    import uuid

    url = os.environ.get("ELASTICSEARCH_URL")
    if not url:
        pytest.skip("ELASTICSEARCH_URL is not set: no Elasticsearch cluster for the engine contract")
    from indexer.engines.elasticsearch_engine import ElasticsearchEngine

    # A unique prefix per test: runs never see each other's indices, and everything is dropped afterwards.
    cluster = ElasticsearchEngine(url, prefix=f"test-{uuid.uuid4().hex[:12]}-")
    try:
        yield cluster
    finally:
        cluster.drop()
        cluster.close()


def test_upsert_then_search_and_count(engine: SearchEngine) -> None:
    engine.upsert([doc("a", "電池 回収"), doc("b", "電池 発熱"), doc("c", "図書館")])
    assert engine.count() == 3
    assert sorted(ids(engine, EngineQuery(must=words("電池")))) == ["a", "b"]
    assert ids(engine, EngineQuery(must=words("電池", "回収"))) == ["a"]
    result = engine.search(EngineQuery(must=words("電池")))
    assert result.total == 2
    assert result.hits[0].document.url == f"https://example.jp/{result.hits[0].id}"


def test_a_hit_brings_its_body_normalized_at_index_time(engine: SearchEngine) -> None:
    body = "ＳＡＭＰＬＥ電機の（株）モバイルﾊﾞｯﾃﾘｰ、型番ＭＢ－１０。"  # widths, case, ㈱-like folds, a katakana hyphen
    engine.upsert([doc("a", "電池 回収", body=body), doc("b", "電池 発熱")])
    found = {hit.id: hit.document for hit in engine.search(EngineQuery(must=words("電池"))).hits}
    stored = found["a"].body_normalized
    assert stored is not None
    assert (stored.text, stored.origin) == (normalize(body).text, normalize(body).origin)
    assert found["b"].body_normalized is not None and found["b"].body_normalized.text == ""


def test_a_payload_indexed_before_bodies_were_normalized_with_it_still_reads() -> None:
    payload = build_payload(doc("a", "電池 回収", body="ＡＢＣ"))
    del payload["body_norm"]
    document = document_from_payload(payload)
    assert document.body == "ＡＢＣ" and document.body_normalized is None  # the snippet normalizes it then


def test_a_stale_revision_never_overwrites_a_newer_one(engine: SearchEngine) -> None:
    assert engine.upsert([doc("a", "新しい", revision=2)]) == 1
    assert engine.upsert([doc("a", "古い", revision=1)]) == 0
    assert engine.upsert([doc("a", "新しい", revision=2)]) == 0  # a duplicate delivery changes nothing
    assert engine.versions() == {"a": 2}
    assert ids(engine, EngineQuery(must=words("古い"))) == []
    assert ids(engine, EngineQuery(must=words("新しい"))) == ["a"]


def test_in_one_batch_the_newest_revision_wins(engine: SearchEngine) -> None:
    engine.upsert([doc("a", "三", revision=3), doc("a", "一", revision=1), doc("a", "二", revision=2)])
    assert engine.versions() == {"a": 3}


def test_delete_leaves_a_tombstone_that_stale_writes_cannot_resurrect(engine: SearchEngine) -> None:
    engine.upsert([doc("a", "電池", revision=1), doc("b", "電池", revision=1)])
    assert engine.delete([("a", 2)]) == 1
    assert engine.count() == 1
    assert engine.upsert([doc("a", "電池", revision=1)]) == 0
    assert ids(engine, EngineQuery(must=words("電池"))) == ["b"]
    assert engine.upsert([doc("a", "電池", revision=3)]) == 1  # a newer revision (restored) comes back
    assert sorted(ids(engine, EngineQuery(must=words("電池")))) == ["a", "b"]


def test_phrase_matches_consecutive_tokens_only(engine: SearchEngine) -> None:
    engine.upsert([doc("a", "東京 都庁"), doc("b", "都庁 の 東京")])
    phrase = ((TermClause((FieldMatch("title_a", ("東京", "都庁")),)),),)
    assert ids(engine, EngineQuery(must=phrase)) == ["a"]


def test_exclusion_or_groups_and_minimum_should_match(engine: SearchEngine) -> None:
    engine.upsert([doc("a", "電池 回収"), doc("b", "電池 発熱"), doc("c", "ヒーター 回収")])
    excluded = (TermClause((FieldMatch("title_c", ("発熱",)),)),)
    assert ids(engine, EngineQuery(must=words("電池"), must_not=excluded)) == ["a"]
    either = ((TermClause((FieldMatch("title_c", ("発熱",)),)), TermClause((FieldMatch("title_c", ("ヒーター",)),))),)
    assert sorted(ids(engine, EngineQuery(must=either))) == ["b", "c"]
    relaxed = EngineQuery(must=words("電池", "ヒーター"), minimum_should_match=1)
    assert sorted(ids(engine, relaxed)) == ["a", "b", "c"]
    assert ids(engine, replace(relaxed, minimum_should_match=None)) == []


def test_regex_alternative_matches_a_single_character_inside_bigrams(engine: SearchEngine) -> None:
    engine.upsert([doc("a", "10 0~ ~2 20"), doc("b", "図書 書館")])
    single = ((TermClause((FieldMatch("title_b", (), regex=r"\~.|.\~"),)),),)
    assert ids(engine, EngineQuery(must=single)) == ["a"]


def test_filters_and_facets(engine: SearchEngine) -> None:
    may = datetime(2026, 5, 1, tzinfo=JST)
    engine.upsert(
        [
            doc("a", "電池", kind="notice", categories=("safety.recall",), provenance="maker", published=may),
            doc("b", "電池", kind="product", categories=("food", "safety.recall"), provenance="coop"),
            doc("c", "電池", kind="product", categories=("food",), provenance="coop", organization="生協"),
        ]
    )
    base = EngineQuery(must=words("電池"))
    result = engine.search(base)
    assert result.facets["kind"] == [("product", 2), ("notice", 1)]
    assert result.facets["categories"] == [("food", 2), ("safety.recall", 2)]
    assert result.facets["provenance"] == [("coop", 2), ("maker", 1)]
    assert result.facets["organization"] == [("生協", 1)]
    assert result.facets["year"] == [("2026", 1)]
    assert sorted(ids(engine, replace(base, filters=Filters(kind=("product",))))) == ["b", "c"]
    # Values of one facet are OR'ed, different facets AND'ed.
    both = Filters(kind=("notice", "product"), categories=("safety.recall",))
    assert sorted(ids(engine, replace(base, filters=both))) == ["a", "b"]
    dated = Filters(date_from=datetime(2026, 4, 1, tzinfo=JST), date_to=datetime(2026, 6, 1, tzinfo=JST))
    assert ids(engine, replace(base, filters=dated)) == ["a"]
    filtered = engine.search(replace(base, filters=Filters(kind=("product",))))
    assert filtered.facets["kind"] == [("product", 2)]


def test_filters_alone_match_everything_they_allow(engine: SearchEngine) -> None:
    engine.upsert([doc("a", "一", kind="faq"), doc("b", "二", kind="notice")])
    assert ids(engine, EngineQuery(filters=Filters(kind=("faq",)))) == ["a"]
    assert engine.search(EngineQuery()).total == 2
    assert ids(engine, EngineQuery(filters=Filters(ids=("b",)))) == ["b"]
    many = tuple(f"missing-{n}" for n in range(100))
    assert sorted(ids(engine, EngineQuery(filters=Filters(ids=(*many, "a", "b"))))) == ["a", "b"]


def test_exclusions_alone_match_every_other_live_document(engine: SearchEngine) -> None:
    engine.upsert([doc("a", "電池 回収"), doc("b", "電池 発熱"), doc("c", "図書館")])
    engine.delete([("c", 2)])
    excluded = (TermClause((FieldMatch("title_c", ("発熱",)),)),)
    assert ids(engine, EngineQuery(must_not=excluded)) == ["a"]
    assert engine.search(EngineQuery()).total == 2  # the tombstone of c is never a hit


def test_sort_orders_and_pagination(engine: SearchEngine) -> None:
    day = datetime(2026, 1, 1, tzinfo=JST)
    engine.upsert(
        [
            doc(f"d{i}", "講座", published=day + timedelta(days=i), event=day + timedelta(days=30 - i))
            for i in range(5)
        ]
        + [doc("undated", "講座")]
    )
    newest = EngineQuery(must=words("講座"), sort="newest", limit=6)
    assert ids(engine, newest) == ["d4", "d3", "d2", "d1", "d0", "undated"]
    # Soonest event first (d4's event is earliest); records without an event date come last.
    assert ids(engine, replace(newest, sort="event")) == ["d4", "d3", "d2", "d1", "d0", "undated"]
    assert ids(engine, replace(newest, offset=2, limit=2)) == ["d2", "d1"]
    assert engine.search(replace(newest, offset=2, limit=2)).total == 6


def test_relevance_prefers_more_matches(engine: SearchEngine) -> None:
    engine.upsert([doc("few", "電池 説明 文章 長い 一般"), doc("many", "電池 電池 電池")])
    assert ids(engine, EngineQuery(must=words("電池")))[0] == "many"


def test_rebuild_switches_atomically_and_a_failed_rebuild_keeps_the_old_index(engine: SearchEngine) -> None:
    engine.upsert([doc("old", "古い")])

    def failing() -> Iterator[IndexDocument]:
        yield doc("new", "新しい")
        raise RuntimeError("killed mid-rebuild")

    with pytest.raises(RuntimeError):
        engine.rebuild(failing())
    assert engine.versions() == {"old": 1}

    seen: list[int] = []
    assert engine.rebuild([doc("new", "新しい"), doc("other", "別")], progress=seen.append) == 2
    assert len(seen) == 2
    assert engine.versions() == {"new": 1, "other": 1}
    assert ids(engine, EngineQuery(must=words("古い"))) == []


def test_rebuild_refuses_duplicate_ids(engine: SearchEngine) -> None:
    with pytest.raises(EngineError):
        engine.rebuild([doc("a", "一"), doc("a", "二")])


def test_suggest_lists_terms_by_prefix(engine: SearchEngine) -> None:
    engine.upsert([doc("a", "図書館 図書"), doc("b", "図書館")])
    suggestions = dict(engine.suggest("title_c", "図書"))
    assert suggestions == {"図書": 1, "図書館": 2}
    assert engine.suggest("not_a_field", "図") == []


def test_the_version_changes_with_every_write_or_is_never_known(engine: SearchEngine) -> None:
    """Result caches key on it (search_app.cache): a write it missed would show stale results."""
    seen = [engine.version()]
    assert engine.version() == seen[0]  # reading changes nothing
    engine.upsert([doc("a", "電池")])
    seen.append(engine.version())
    engine.delete([("a", 2)])
    seen.append(engine.version())
    engine.rebuild([doc("b", "電池")])
    seen.append(engine.version())
    if seen[0] is None:  # Elasticsearch cannot tell without a round trip: caches use their lifetime
        assert seen == [None] * 4
    else:
        assert len(set(seen)) == 4


def test_two_engine_instances_on_one_directory_see_each_others_writes(tmp_path: Path) -> None:
    """The web process and a CLI import share the embedded index."""
    first, second = TantivyEngine(tmp_path / "index"), TantivyEngine(tmp_path / "index")
    first.upsert([doc("a", "電池")])
    assert ids(second, EngineQuery(must=words("電池"))) == ["a"]
    second.rebuild([doc("b", "電池")])
    assert ids(first, EngineQuery(must=words("電池"))) == ["b"]
    first.upsert([doc("c", "電池")])  # written to the new generation, not the retired one
    assert sorted(ids(second, EngineQuery(must=words("電池")))) == ["b", "c"]
    assert first.version() == second.version() is not None  # one index, one version, whoever wrote last


def test_searches_do_not_wait_for_a_commit_in_progress(tmp_path: Path) -> None:
    """A commit can wait seconds for tantivy's merges (at 100k records, every few commits): searches in the
    process's other threads go on meanwhile (load_t29.py saw every request of a worker stall for 2 s)."""
    import threading

    engine = TantivyEngine(tmp_path / "index")
    engine.upsert([doc("a", "電池")])
    writing, release = threading.Event(), threading.Event()

    def slow_commit() -> None:
        with engine._writer():
            writing.set()
            release.wait(10)

    writer = threading.Thread(target=slow_commit)
    writer.start()
    try:
        assert writing.wait(10)
        found: list[list[str]] = []
        searcher = threading.Thread(target=lambda: found.append(ids(engine, EngineQuery(must=words("電池")))))
        searcher.start()
        searcher.join(5)
        assert found == [["a"]]
    finally:
        release.set()
        writer.join(10)
        engine.close()


def test_a_commit_returns_before_its_merges_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tantivy's merges after a commit (seconds at 100k records) are waited for in the background: the batch is
    searchable at once and the writer returns; this process's next writer, and close(), wait for them."""
    import threading

    engine = TantivyEngine(tmp_path / "index")
    merging, release = threading.Event(), threading.Event()
    finish = engine._finish_merges

    def slow_merges(writer: object) -> None:  # a merge that takes its time, as large ones do
        merging.set()
        release.wait(10)
        finish(writer)

    monkeypatch.setattr(engine, "_finish_merges", slow_merges)
    try:
        engine.upsert([doc("a", "電池")])
        assert merging.wait(5)
        assert ids(engine, EngineQuery(must=words("電池"))) == ["a"]
        next_writer = threading.Thread(target=lambda: engine.upsert([doc("b", "電池")]))
        next_writer.start()
        next_writer.join(0.5)
        assert next_writer.is_alive()  # waits for the merges, not tantivy's lock
        release.set()
        next_writer.join(10)
        assert sorted(ids(engine, EngineQuery(must=words("電池")))) == ["a", "b"]
    finally:
        release.set()
        engine.close()


def test_a_child_forked_during_merges_can_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The merges' thread holds this process's write lock; a forked child (a Celery prefork pool) has no such
    thread, so it starts with the lock free."""
    import os
    import threading

    engine = TantivyEngine(tmp_path / "index")
    release = threading.Event()
    finish = engine._finish_merges

    def slow_merges(writer: object) -> None:
        release.wait(10)
        finish(writer)

    monkeypatch.setattr(engine, "_finish_merges", slow_merges)
    try:
        engine.upsert([doc("a", "電池")])
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            os._exit(0 if engine._write_lock.acquire(timeout=5) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        engine.close()
