"""The Elasticsearch engine's request bodies, asserted exactly, without a cluster.

The engine's behaviour against a real cluster is the contract suite (test_contract.py, which runs it when
ELASTICSEARCH_URL is set); these tests pin what we send, as warehouse does for its query builders.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from indexer.engines.base import (
    FACET_FIELDS,
    TOKEN_FIELDS,
    EngineError,
    EngineQuery,
    EngineUnavailable,
    FieldMatch,
    Filters,
    IndexDocument,
    TermClause,
    build_payload,
    document_from_payload,
)
from indexer.engines.elasticsearch_engine import (
    TEMPLATE_PATH,
    ElasticsearchEngine,
    alias_name,
    build_bulk_actions,
    build_delete_actions,
    build_document_body,
    build_search_body,
    build_suggest_body,
    build_versions_body,
    index_name,
    load_template,
    newest_per_chunk,
    rebuild_settings,
    suggest_fields,
)

JST = timezone(timedelta(hours=9))
LIVE = {"term": {"live": True}}
RELEVANCE = ["_score", {"id": "asc"}]


def full_document(**changes: object) -> IndexDocument:
    document = IndexDocument(
        id="rec-1",
        revision=3,
        kind="notice",
        title="電池 回収",
        body="発熱 の おそれ",
        url="https://example.jp/rec-1",
        provenance="maker",
        organization="生協",
        region="札幌市",
        categories=("safety.recall", "food"),
        published_at=datetime(2026, 5, 1, 9, 0, tzinfo=JST),
        event_at=datetime(2026, 6, 1, 10, 0, tzinfo=JST),
        verified_at=datetime(2026, 5, 2, tzinfo=JST),
        details={"maker": "山田電機"},
        tokens={name: f"{name} トークン" for name in TOKEN_FIELDS},
    )
    return replace(document, **changes)


def term(field: str, token: str, boost: float = 1.0) -> dict[str, object]:
    return {"term": {field: {"value": token, "boost": boost}}}


def body_of(query: EngineQuery) -> dict[str, object]:
    """The search body without the parts every query shares, to keep assertions about what varies."""
    body = build_search_body(replace(query, facets=()))
    assert body["track_total_hits"] is True
    assert body["_source"] == ["payload"]
    return {key: value for key, value in body.items() if key not in ("track_total_hits", "_source")}


# --- queries ------------------------------------------------------------------------------------------------


def test_a_single_token_is_a_term_query_and_tombstones_are_filtered_out() -> None:
    query = EngineQuery(must=((TermClause((FieldMatch("title_c", ("電池",)),)),),))
    assert body_of(query) == {
        "query": {"bool": {"filter": [LIVE], "must": [term("title_c", "電池")]}},
        "sort": RELEVANCE,
        "from": 0,
        "size": 10,
    }


def test_several_tokens_are_an_exact_phrase_through_the_whitespace_analyzer() -> None:
    query = EngineQuery(must=((TermClause((FieldMatch("title_a", ("東京", "都庁"), boost=2.0),)),),))
    assert body_of(query)["query"] == {
        "bool": {
            "filter": [LIVE],
            "must": [
                {
                    "match_phrase": {
                        "title_a": {"query": "東京 都庁", "analyzer": "pretokenized", "slop": 0, "boost": 2.0}
                    }
                }
            ],
        }
    }


def test_a_regex_alternative_is_a_regexp_query_without_lucene_operators() -> None:
    query = EngineQuery(must=((TermClause((FieldMatch("title_b", (), boost=0.5, regex=r"\~.|.\~"),)),),))
    assert body_of(query)["query"]["bool"]["must"] == [
        {"regexp": {"title_b": {"value": r"\~.|.\~", "flags": "NONE", "boost": 0.5}}}
    ]


def test_alternatives_of_a_term_are_a_dis_max_with_their_boosts() -> None:
    clause = TermClause((FieldMatch("title_c", ("電池",), 3.0), FieldMatch("body_r", ("デンチ",), 0.5)))
    assert body_of(EngineQuery(must=((clause,),)))["query"]["bool"]["must"] == [
        {
            "dis_max": {
                "queries": [term("title_c", "電池", 3.0), term("body_r", "デンチ", 0.5)],
                "tie_breaker": 0.1,
            }
        }
    ]


def test_an_or_group_is_a_should_and_groups_are_anded() -> None:
    either = (
        TermClause((FieldMatch("title_c", ("発熱",)),)),
        TermClause((FieldMatch("title_c", ("ヒーター",)),)),
    )
    also = (TermClause((FieldMatch("title_c", ("回収",)),)),)
    assert body_of(EngineQuery(must=(either, also)))["query"]["bool"]["must"] == [
        {
            "bool": {
                "should": [term("title_c", "発熱"), term("title_c", "ヒーター")],
                "minimum_should_match": 1,
            }
        },
        term("title_c", "回収"),
    ]


def test_minimum_should_match_relaxes_the_groups_into_one_should() -> None:
    groups = tuple((TermClause((FieldMatch("title_c", (word,)),)),) for word in ("電池", "ヒーター", "回収"))
    assert body_of(EngineQuery(must=groups, minimum_should_match=2))["query"]["bool"]["must"] == [
        {
            "bool": {
                "should": [term("title_c", "電池"), term("title_c", "ヒーター"), term("title_c", "回収")],
                "minimum_should_match": 2,
            }
        }
    ]


def test_an_exclusion_is_a_must_not() -> None:
    query = EngineQuery(
        must=((TermClause((FieldMatch("title_c", ("電池",)),)),),),
        must_not=(TermClause((FieldMatch("title_c", ("発熱",)),)),),
    )
    assert body_of(query)["query"] == {
        "bool": {"filter": [LIVE], "must": [term("title_c", "電池")], "must_not": [term("title_c", "発熱")]}
    }


def test_no_terms_match_every_live_document() -> None:
    assert body_of(EngineQuery())["query"] == {"bool": {"filter": [LIVE]}}


@pytest.mark.parametrize("name", ["kind", "categories", "organization", "region", "provenance", "year"])
def test_each_facet_filter_is_a_terms_filter(name: str) -> None:
    filters = Filters(**{name: ("a", "b")})
    assert body_of(EngineQuery(filters=filters))["query"] == {
        "bool": {"filter": [LIVE, {"terms": {name: ["a", "b"]}}]}
    }


def test_filters_combine_in_a_fixed_order_and_ids_filter_by_id() -> None:
    filters = Filters(kind=("notice", "product"), categories=("safety.recall",), ids=("x", "y"))
    assert body_of(EngineQuery(filters=filters))["query"]["bool"]["filter"] == [
        LIVE,
        {"terms": {"kind": ["notice", "product"]}},
        {"terms": {"categories": ["safety.recall"]}},
        {"terms": {"id": ["x", "y"]}},
    ]


def test_a_date_range_is_inclusive_epoch_seconds_on_date_ts() -> None:
    start, end = datetime(2026, 4, 1, tzinfo=JST), datetime(2026, 6, 1, tzinfo=JST)
    both = body_of(EngineQuery(filters=Filters(date_from=start, date_to=end)))["query"]["bool"]["filter"]
    assert both == [
        LIVE,
        {"range": {"date_ts": {"gte": int(start.timestamp()), "lte": int(end.timestamp())}}},
    ]
    assert int(start.timestamp()) == 1774969200  # 2026-04-01 00:00 JST
    only_end = body_of(EngineQuery(filters=Filters(date_to=end)))["query"]["bool"]["filter"]
    assert only_end == [LIVE, {"range": {"date_ts": {"lte": int(end.timestamp())}}}]


def test_sorts_mirror_the_embedded_engine_with_missing_dates_last() -> None:
    assert body_of(EngineQuery(sort="newest"))["sort"] == [
        {"date_ts": {"order": "desc", "missing": "_last"}},
        {"id": "asc"},
    ]
    assert body_of(EngineQuery(sort="event"))["sort"] == [
        {"event_ts": {"order": "asc", "missing": "_last"}},
        {"id": "asc"},
    ]
    assert body_of(EngineQuery())["sort"] == RELEVANCE


def test_pagination_is_from_and_size() -> None:
    body = body_of(EngineQuery(offset=20, limit=5))
    assert (body["from"], body["size"]) == (20, 5)


def test_facets_are_terms_aggregations_of_the_requested_size() -> None:
    body = build_search_body(EngineQuery(facets=("kind", "year"), facet_size=7))
    assert body["aggs"] == {
        "kind": {"terms": {"field": "kind", "size": 7}},
        "year": {"terms": {"field": "year", "size": 7}},
    }
    assert set(build_search_body(EngineQuery())["aggs"]) == set(FACET_FIELDS)
    assert "aggs" not in build_search_body(EngineQuery(facets=()))
    with pytest.raises(ValueError):
        build_search_body(EngineQuery(facets=("title",)))


def test_no_body_ever_uses_query_string() -> None:
    """T24: user input reaches Elasticsearch only as terms, never as query syntax."""
    query = EngineQuery(
        must=((TermClause((FieldMatch("title_c", ("AND",)), FieldMatch("title_b", (), regex="a.|.a"))),),),
        must_not=(TermClause((FieldMatch("title_c", ("(*)",)),)),),
    )
    text = json.dumps(build_search_body(query))
    assert "query_string" not in text and "simple_query_string" not in text


def test_suggest_lists_prefixed_terms_in_term_order_from_live_documents() -> None:
    assert build_suggest_body("title_c", "図書.", 5) == {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": {"filter": [LIVE, {"prefix": {"title_c": {"value": "図書."}}}]}},
        "aggs": {
            "suggestions": {
                "terms": {"field": "title_c", "include": r"図書\..*", "size": 5, "order": {"_key": "asc"}}
            }
        },
    }


def test_versions_pages_through_a_point_in_time() -> None:
    first = build_versions_body("pit-1", None, size=100)
    assert first == {
        "size": 100,
        "query": {"bool": {"filter": [LIVE]}},
        "_source": ["revision"],
        "track_total_hits": False,
        "pit": {"id": "pit-1", "keep_alive": "1m"},
        "sort": [{"_shard_doc": "asc"}],
    }
    assert build_versions_body("pit-2", [42], size=100) == {
        **first,
        "pit": {"id": "pit-2", "keep_alive": "1m"},
        "search_after": [42],
    }


# --- documents and bulk actions -----------------------------------------------------------------------------


def test_document_body_holds_keys_tokens_sort_dates_and_a_payload() -> None:
    document = full_document()
    body = build_document_body(document)
    assert {key: value for key, value in body.items() if key not in TOKEN_FIELDS and key != "payload"} == {
        "id": "rec-1",
        "revision": 3,
        "live": True,
        "kind": "notice",
        "provenance": "maker",
        "categories": ["safety.recall", "food"],
        "organization": "生協",
        "region": "札幌市",
        "year": "2026",
        "date_ts": 1777593600,  # 2026-05-01 09:00 JST
        "event_ts": 1780275600,  # 2026-06-01 10:00 JST
    }
    assert body["title_c"] == "title_c トークン"
    assert body["payload"] == build_payload(document)
    assert document_from_payload(json.loads(json.dumps(body["payload"]))) == replace(document, tokens={})


def test_absent_values_and_empty_token_fields_are_left_out() -> None:
    sparse = full_document(
        organization=None,
        region=None,
        categories=(),
        published_at=None,
        event_at=None,
        tokens={"title_c": "電池"},
    )
    body = build_document_body(sparse)
    assert set(body) == {"id", "revision", "live", "kind", "provenance", "title_c", "payload"}


def test_bulk_actions_use_the_revision_as_an_external_version() -> None:
    document = full_document()
    assert list(build_bulk_actions([document])) == [
        {
            "_op_type": "index",
            "_id": "rec-1",
            "_version": 3,
            "_version_type": "external",
            "_source": build_document_body(document),
        }
    ]


def test_deletes_are_versioned_tombstones() -> None:
    assert list(build_delete_actions([("rec-1", 4)])) == [
        {
            "_op_type": "index",
            "_id": "rec-1",
            "_version": 4,
            "_version_type": "external",
            "_source": {"id": "rec-1", "revision": 4, "live": False},
        }
    ]


def test_within_a_chunk_only_the_newest_revision_of_a_record_is_sent() -> None:
    actions = build_bulk_actions([full_document(revision=r) for r in (3, 1, 2)] + [full_document(id="b")])
    assert [(a["_id"], a["_version"]) for a in newest_per_chunk(actions)] == [("rec-1", 3), ("b", 3)]
    chunked = newest_per_chunk(build_delete_actions([("a", 1), ("a", 2), ("a", 3)]), size=2)
    assert [a["_version"] for a in chunked] == [
        2,
        3,
    ]  # a later chunk still reaches the cluster, which decides


# --- the template (T08) -------------------------------------------------------------------------------------


def test_the_template_is_strict_and_maps_exactly_the_fields_documents_carry() -> None:
    template = load_template()
    mappings = template["mappings"]
    assert mappings["dynamic"] == "strict"
    body = build_document_body(full_document())
    assert set(mappings["properties"]) == set(body)
    assert set(build_delete_actions([("a", 1)]).__next__()["_source"]) <= set(mappings["properties"])


def test_template_field_types() -> None:
    template = load_template()
    properties = template["mappings"]["properties"]
    for name in ("id", *FACET_FIELDS):
        assert properties[name] == {"type": "keyword"}, name
    assert properties["revision"] == {"type": "long"}
    assert properties["date_ts"] == properties["event_ts"] == {"type": "long"}
    assert properties["payload"] == {"type": "object", "enabled": False}
    for name in TOKEN_FIELDS:
        assert properties[name]["type"] == "text"
        assert properties[name]["analyzer"] == "pretokenized"
        assert properties[name]["index_options"] == "positions"  # phrases need positions
    analysis = template["settings"]["analysis"]
    assert analysis["analyzer"]["pretokenized"] == {
        "type": "custom",
        "tokenizer": "pretokenized",
        "filter": [],
    }
    assert analysis["tokenizer"]["pretokenized"]["type"] == "whitespace"
    assert suggest_fields(template) == {"title_c", "title_a", "title_r"}


def test_names_come_from_the_template_file() -> None:
    assert TEMPLATE_PATH.name == "records-v1.json"
    assert alias_name("library-") == "library-records"
    moment = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert index_name("library-", moment) == "library-records-v1-20260501120000123456"
    assert index_name("library-", moment.astimezone(JST)) == "library-records-v1-20260501120000123456"
    with pytest.raises(ValueError):
        alias_name("library-", Path("records.json"))


def test_a_rebuild_loads_without_refresh_or_replicas_then_restores_the_template() -> None:
    template = load_template()
    loading, restore = rebuild_settings(template)
    assert loading["refresh_interval"] == "-1"
    assert loading["number_of_replicas"] == 0
    assert loading["auto_expand_replicas"] == "false"
    assert loading["analysis"] == template["settings"]["analysis"]
    assert restore == {"refresh_interval": "1s", "number_of_replicas": None, "auto_expand_replicas": "0-1"}


# --- a cluster that is down ---------------------------------------------------------------------------------


def test_an_unreachable_cluster_is_an_engine_error_in_japanese() -> None:
    """A real refused connection (a port nobody listens on), not a mock; the UI shows EngineError as 503."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = ElasticsearchEngine(f"http://127.0.0.1:{port}", prefix="test-down-")
    try:
        # Unavailable (not merely failed), so the outbox waits instead of dead-lettering the change.
        with pytest.raises(EngineUnavailable, match="Elasticsearch に接続できず"):
            engine.search(EngineQuery())
        with pytest.raises(EngineUnavailable):
            engine.upsert([full_document()])
    finally:
        engine.close()


def test_an_upper_case_prefix_is_refused() -> None:
    with pytest.raises(ValueError):
        ElasticsearchEngine("http://127.0.0.1:9200", prefix="Library-")


def test_a_hanging_cluster_fails_the_first_search_within_the_search_budget() -> None:
    """T28: a real socket that accepts but never answers. Before the fix the first search waited 30 s x 3 tries."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes connections; nobody ever reads or answers
        engine = ElasticsearchEngine(f"http://127.0.0.1:{silent.getsockname()[1]}", prefix="test-hang-")
        try:
            started = time.monotonic()
            with pytest.raises(EngineUnavailable):
                engine.search(EngineQuery())
            assert time.monotonic() - started < 10  # generous on a loaded machine; the budget is 2 s
        finally:
            engine.close()
