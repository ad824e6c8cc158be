"""Shops' urgent notices in the library core: idempotent, clustered, updated, retracted and expired, on both SQL
backends, with the real analyzer and the embedded engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from indexer.config import Settings
from indexer.library import Library
from indexer.notices import (
    SHOP_SOURCE,
    NoticeConflict,
    NoticeNotFound,
    NoticeValidationError,
    _new_record,  # the first delivery's own writes, to hold them uncommitted
    cluster_key,
    expire_notices,
    get_notice,
    list_notices,
    retract_notice,
    submit_notice,
    update_notice,
    validate_payload,
)
from indexer.search import Query
from indexer.store import NoticeReportRow, RecordRow, RevisionRow, ShopRow, enqueue, verify_chain
from search_app.notices import active_urgent_notices, pinned_notices

JAN = "4901234567894"  # a valid check digit
OTHER_JAN = "4512345678906"


@pytest.fixture()
def library(database_url: str, data_dir: Path) -> Iterator[Library]:
    lib = Library.open(Settings.from_env(data_dir=data_dir, database_url=database_url))
    yield lib
    lib.close()


def add_shop(library: Library, name: str) -> int:
    with library.store.session() as session:
        shop = ShopRow(name=name)
        session.add(shop)
        session.flush()
        return shop.id


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def payload(**fields: Any) -> dict[str, Any]:
    return {
        "maker": "みなと電機",
        "product": "電気ケトル すぐわく 1.0L",
        "jan_codes": [JAN],
        "hazard": "取っ手の付け根が割れ、熱湯がこぼれてやけどをするおそれがあります。",
        "action": "使用を中止し、店頭で返品・返金を受けてください。",
        "severity": "high",
        "valid_until": in_days(30),
        **fields,
    }


def notice_records(library: Library) -> list[RecordRow]:
    with library.store.session(readonly=True) as session:
        return list(session.scalars(select(RecordRow).where(RecordRow.kind == "notice").order_by(RecordRow.id)))


def report_count(library: Library) -> int:
    with library.store.session(readonly=True) as session:
        return session.scalar(select(func.count()).select_from(NoticeReportRow)) or 0


def hit_ids(library: Library, text: str) -> set[str]:
    return {hit.id for hit in library.search(Query(text=text)).hits}


def test_a_pushed_notice_is_an_urgent_published_record_searchable_at_once(library: Library) -> None:
    shop = add_shop(library, "みなと商店")
    outcome = submit_notice(library, shop, "n-1", payload())
    assert outcome.created
    report = outcome.report
    assert (report.status, report.notice_status, report.reported_by) == ("active", "published", ("みなと商店",))
    record = library.get_record(report.record_id)
    assert record is not None and record.source == SHOP_SOURCE
    data = record.data
    assert (data["kind"], data["provenance"], data["urgent"], data["organization"]) == ("notice", "shop", True, "みなと電機")
    assert data["title"] == "みなと電機「電気ケトル すぐわく 1.0L」に関する緊急のお知らせ"
    assert data["valid_until"] and data["published_at"]
    # Drained before the call returned: no worker needed for the notice to be found (T29).
    assert hit_ids(library, "すぐわく") == {report.record_id}
    assert [n["id"] for n in pinned_notices(library, Query(text="みなと電機"))] == [report.record_id]
    with library.store.session(readonly=True) as session:
        assert verify_chain(session, report.record_id)


def test_the_same_notice_id_twice_is_one_notice(library: Library) -> None:
    shop = add_shop(library, "みなと商店")
    body = payload()
    first = submit_notice(library, shop, "n-1", body)
    again = submit_notice(library, shop, "n-1", dict(body))
    assert (first.created, again.created) == (True, False)
    assert again.report == first.report
    assert (len(notice_records(library)), report_count(library)) == (1, 1)
    assert library.get_record(first.report.record_id).revision == 1  # the retry wrote nothing


def test_an_id_reused_for_other_content_is_a_conflict(library: Library) -> None:
    shop = add_shop(library, "みなと商店")
    body = payload()
    submit_notice(library, shop, "n-1", body)
    with pytest.raises(NoticeConflict, match="PATCH"):
        submit_notice(library, shop, "n-1", {**body, "severity": "low"})
    assert report_count(library) == 1


def test_concurrent_retries_make_one_report(library: Library) -> None:
    shop = add_shop(library, "みなと商店")
    body = payload()
    barrier = threading.Barrier(6)
    outcomes: list[Any] = []

    def send() -> None:
        barrier.wait()
        outcomes.append(submit_notice(library, shop, "n-race", body))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 6
    assert sorted(o.created for o in outcomes) == [False] * 5 + [True]
    assert {o.report.record_id for o in outcomes} == {outcomes[0].report.record_id}
    assert (len(notice_records(library)), report_count(library)) == (1, 1)


def test_two_shops_reporting_one_recall_make_one_notice_with_both_shops(library: Library) -> None:
    minato, kita = add_shop(library, "みなと商店"), add_shop(library, "北口ストア")
    first = submit_notice(library, minato, "m-1", payload(severity="medium"))
    # Written differently: full-width maker and codes, a legal-entity word, another model number, a later date.
    second = submit_notice(
        library, kita, "k-77",
        payload(maker="株式会社ミナト電機".replace("ミナト", "みなと"), jan_codes=["４９０１２３４５６７８９４"],
                model_numbers=["MK-10"], severity="critical", valid_until=in_days(60)),
    )  # fmt: skip
    assert second.created and second.report.record_id == first.report.record_id
    assert second.report.reported_by == ("みなと商店", "北口ストア")
    data = library.get_record(first.report.record_id).data
    assert data["reported_by"] == ["みなと商店", "北口ストア"]
    assert (data["severity"], data["model_numbers"], data["jan_codes"]) == ("critical", ["MK-10"], [JAN])
    assert data["valid_until"] == second.report.payload["valid_until"]  # the later of the two
    assert hit_ids(library, "すぐわく") == {first.report.record_id}
    # The report made by the model number alone joins through the record's union of codes.
    third = submit_notice(library, add_shop(library, "駅前店"), "s-1", payload(jan_codes=[], model_numbers=["mk-10"]))
    assert third.report.record_id == first.report.record_id
    assert len(notice_records(library)) == 1


def test_other_products_of_the_maker_are_other_notices(library: Library) -> None:
    shop = add_shop(library, "みなと商店")
    a = submit_notice(library, shop, "a", payload())
    b = submit_notice(library, shop, "b", payload(jan_codes=[OTHER_JAN], product="電気ポット"))
    c = submit_notice(library, shop, "c", payload(jan_codes=[], product="延長コード"))
    d = submit_notice(library, shop, "d", payload(maker="港製作所"))
    assert len({a.report.record_id, b.report.record_id, c.report.record_id, d.report.record_id}) == 4
    assert cluster_key(a.report.payload) != cluster_key(d.report.payload)


def test_a_shop_report_of_a_makers_own_notice_joins_it(library: Library) -> None:
    makers = library.ingest(
        {"id": "maker-recall", "kind": "notice", "provenance": "maker", "source": "crawl:1",
         "title": "電気ケトル回収のお知らせ", "maker": "株式会社みなと電機", "product": "すぐわく",
         "jan_codes": [JAN], "hazard": "割れ", "action": "返品", "valid_until": in_days(90)},
        author="crawler", summary="crawl",
    )  # fmt: skip
    shop = add_shop(library, "みなと商店")
    outcome = submit_notice(library, shop, "n-1", payload(maker="みなと電機"))
    assert outcome.report.record_id == makers.record_id
    data = library.get_record(makers.record_id).data
    assert (data["provenance"], data["title"], data["hazard"]) == ("maker", "電気ケトル回収のお知らせ", "割れ")
    assert (data["reported_by"], data["urgent"]) == (["みなと商店"], True)
    retracted = retract_notice(library, shop, "n-1")
    # The maker's notice is the maker's: withdrawing the shop's report does not withdraw it.
    assert retracted.notice_status == "published"
    assert library.get_record(makers.record_id).data["reported_by"] == []


MAKER_NOTICE = {
    "kind": "notice", "provenance": "maker", "source": "crawl:1", "external_id": "https://minato.example.jp/recall",
    "title": "電気ケトル回収のお知らせ", "maker": "株式会社みなと電機", "product": "すぐわく",
    "jan_codes": [JAN], "hazard": "割れ", "action": "返品",
}  # fmt: skip


def test_a_makers_notice_crawled_after_the_shops_reports_takes_them_over(library: Library) -> None:
    first, second = add_shop(library, "みなと商店"), add_shop(library, "はま商店")
    shop_made = submit_notice(library, first, "n-1", payload()).report.record_id
    assert submit_notice(library, second, "s-9", payload()).report.record_id == shop_made
    makers = library.ingest({**MAKER_NOTICE, "valid_until": in_days(10)}, author="crawler", summary="crawl")
    assert makers.record_id != shop_made
    # One recall, one notice: the maker's text, the shops' reports, the later of the valid_until dates.
    data = library.get_record(makers.record_id).data
    assert (data["title"], data["urgent"], data["reported_by"]) == ("電気ケトル回収のお知らせ", True, ["みなと商店", "はま商店"])
    assert datetime.fromisoformat(data["valid_until"]) > datetime.now(UTC) + timedelta(days=29)
    assert library.get_record(shop_made).status == "retracted"
    assert get_notice(library, first, "n-1").record_id == makers.record_id
    assert hit_ids(library, "すぐわく") == {makers.record_id}
    assert [n["id"] for n in active_urgent_notices(library)] == [makers.record_id]
    # A third shop's report now joins the maker's notice directly.
    third = add_shop(library, "うみ商店")
    assert submit_notice(library, third, "x", payload()).report.record_id == makers.record_id


def test_a_recrawl_of_the_makers_page_keeps_what_the_shops_reported(library: Library) -> None:
    makers = library.ingest({**MAKER_NOTICE, "valid_until": in_days(10)}, author="crawler", summary="crawl")
    shop = add_shop(library, "みなと商店")
    submit_notice(library, shop, "n-1", payload(valid_until=in_days(60)))
    before = library.get_record(makers.record_id)
    again = library.ingest({**MAKER_NOTICE, "valid_until": in_days(10)}, author="crawler", summary="crawl again")
    after = library.get_record(makers.record_id)
    # The page did not change, so neither did the notice: still urgent, still reported, still pinned.
    assert again.action == "unchanged" and after.revision == before.revision
    assert (after.data["urgent"], after.data["reported_by"]) == (True, ["みなと商店"])
    assert datetime.fromisoformat(after.data["valid_until"]) > datetime.now(UTC) + timedelta(days=59)
    changed = library.ingest({**MAKER_NOTICE, "hazard": "取っ手が割れる", "valid_until": in_days(10)},
                             author="crawler", summary="crawl, page changed")  # fmt: skip
    data = library.get_record(changed.record_id).data
    assert (data["hazard"], data["urgent"], data["reported_by"]) == ("取っ手が割れる", True, ["みなと商店"])
    retract_notice(library, shop, "n-1")
    assert library.get_record(makers.record_id).data["reported_by"] == []


def test_validation_lists_every_field_in_japanese(library: Library) -> None:
    shop = add_shop(library, "みなと商店")
    with pytest.raises(NoticeValidationError) as caught:
        submit_notice(
            library, shop, "n-1",
            {"maker": "", "jan_codes": ["4901234567890"], "severity": "urgent", "colour": "red",
             "valid_until": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
        )  # fmt: skip
    errors = {error.field: error.message for error in caught.value.errors}
    assert errors["colour"] == "不明な項目です"
    assert errors["product"] == errors["hazard"] == errors["action"] == "必須項目です"
    assert errors["maker"] == "空欄にはできません"
    assert errors["jan_codes.0"] == "JAN コードのチェックディジットが正しくありません"
    assert errors["severity"].startswith("次のいずれかを指定してください")
    assert "valid_until" not in errors or "日時" in errors["valid_until"]
    with pytest.raises(NoticeValidationError) as past:
        submit_notice(library, shop, "n-1", payload(valid_until=(datetime.now(UTC) - timedelta(hours=1)).isoformat()))
    assert past.value.errors[0].message == "掲載期限は現在より後の日時にしてください"
    with pytest.raises(NoticeValidationError, match="1 年以内"):
        submit_notice(library, shop, "n-1", payload(valid_until=in_days(400)))
    with pytest.raises(NoticeValidationError, match="英数字"):
        submit_notice(library, shop, "../x", payload())
    assert (notice_records(library), report_count(library)) == ([], 0)


def test_patch_changes_only_the_shops_own_report(library: Library) -> None:
    minato, kita = add_shop(library, "みなと商店"), add_shop(library, "北口ストア")
    first = submit_notice(library, minato, "n-1", payload())
    updated = update_notice(library, minato, "n-1", {"severity": "critical", "contact": "みなと商店 0120-000-000"})
    assert updated.payload["severity"] == "critical" and updated.payload["contact"] == "みなと商店 0120-000-000"
    data = library.get_record(first.report.record_id).data
    assert (data["severity"], data["contact"]) == ("critical", "みなと商店 0120-000-000")
    assert update_notice(library, minato, "n-1", {"contact": None}).payload.get("contact") is None  # null removes
    with pytest.raises(NoticeNotFound):
        update_notice(library, kita, "n-1", {"severity": "low"})
    with pytest.raises(NoticeNotFound):
        get_notice(library, kita, "n-1")
    with pytest.raises(NoticeValidationError):
        update_notice(library, minato, "n-1", {"jan_codes": ["123"]})
    with library.store.session(readonly=True) as session:
        authors = session.scalars(select(RevisionRow.author).where(RevisionRow.record_id == first.report.record_id))
        assert set(authors) == {f"shop:{minato}"}


def test_patch_to_another_product_moves_the_report(library: Library) -> None:
    minato, kita = add_shop(library, "みなと商店"), add_shop(library, "北口ストア")
    shared = submit_notice(library, minato, "n-1", payload()).report.record_id
    submit_notice(library, kita, "k-1", payload())
    moved = update_notice(library, kita, "k-1", {"jan_codes": [OTHER_JAN], "product": "電気ポット"})
    assert moved.record_id != shared and moved.reported_by == ("北口ストア",)
    assert library.get_record(shared).data["reported_by"] == ["みなと商店"]


def test_retract_withdraws_the_report_and_then_the_notice(library: Library) -> None:
    minato, kita = add_shop(library, "みなと商店"), add_shop(library, "北口ストア")
    record_id = submit_notice(library, minato, "n-1", payload()).report.record_id
    submit_notice(library, kita, "k-1", payload())
    one = retract_notice(library, kita, "k-1")
    assert (one.status, one.notice_status, one.reported_by) == ("retracted", "published", ("みなと商店",))
    assert retract_notice(library, kita, "k-1") == one  # twice is once
    with pytest.raises(NoticeConflict):
        update_notice(library, kita, "k-1", {"severity": "low"})
    last = retract_notice(library, minato, "n-1")
    assert last.notice_status == "retracted"
    assert library.get_record(record_id).status == "retracted"
    assert hit_ids(library, "すぐわく") == set()
    assert active_urgent_notices(library) == []
    assert [r.shop_notice_id for r in list_notices(library, minato)] == ["n-1"]


def test_expiry_unpins_and_is_idempotent(library: Library) -> None:
    shop = add_shop(library, "みなと商店")
    record_id = submit_notice(library, shop, "n-1", payload(valid_until=in_days(1))).report.record_id
    lasting = submit_notice(library, shop, "n-2", payload(jan_codes=[OTHER_JAN], product="電気ポット")).report.record_id
    assert {n["id"] for n in active_urgent_notices(library)} == {record_id, lasting}
    later = datetime.now(UTC) + timedelta(days=2)
    assert expire_notices(library, later) == 1
    assert expire_notices(library, later) == 0
    assert library.get_record(record_id).status == "expired"
    # Unpinned by its status, whatever the clock says: the real now is still before its valid_until.
    assert {n["id"] for n in active_urgent_notices(library)} == {lasting}
    assert pinned_notices(library, Query(text="すぐわく")) == []
    assert hit_ids(library, "すぐわく") == set()
    assert get_notice(library, shop, "n-1").notice_status == "expired"
    # A new report of the recall after expiry makes a new notice rather than reviving the expired one.
    fresh = submit_notice(library, add_shop(library, "北口ストア"), "k-1", payload())
    assert fresh.report.record_id not in (record_id, lasting)


def test_a_retry_that_loses_the_race_on_the_unique_constraint_returns_the_winner(postgres_url: str, data_dir: Path) -> None:
    """PostgreSQL only: SQLite's BEGIN IMMEDIATE lets one writer in at a time, so there the retry simply finds the
    stored report. Here the retry reads "no such report" while the first one is still uncommitted, then waits on the
    unique index, and answers with the first one's report once that commits."""
    library = Library.open(Settings.from_env(data_dir=data_dir, database_url=postgres_url))
    try:
        shop = add_shop(library, "みなと商店")
        body = payload()
        outcome: list[Any] = []
        first = library.store.session()
        session = first.__enter__()
        try:
            # The first delivery, as submit_notice writes it, left uncommitted.
            clean = validate_payload(body)
            record_id = _new_record(session, clean, "みなと商店", datetime.now(UTC), author="shop", summary="first")
            session.add(NoticeReportRow(shop_id=shop, shop_notice_id="n-1", record_id=record_id,
                                        cluster_key=cluster_key(clean), payload=clean))  # fmt: skip
            session.flush()
            def send() -> None:
                try:
                    outcome.append(submit_notice(library, shop, "n-1", body))
                except Exception as exc:  # noqa: BLE001  (shown by the assertions below)
                    outcome.append(exc)

            retry = threading.Thread(target=send)
            retry.start()
            _wait_until_blocked_on_a_lock(session, retry, outcome)
        finally:
            first.__exit__(None, None, None)  # commit
        retry.join()
        assert outcome and not outcome[0].created and outcome[0].report.record_id == record_id
        assert (len(notice_records(library)), report_count(library)) == (1, 1)
    finally:
        library.close()


def _wait_until_blocked_on_a_lock(session: Any, retry: threading.Thread, outcome: list[Any]) -> None:
    """Until another backend waits for this session's transaction (the retry, on the uncommitted unique key)."""
    me = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    blocked = text("SELECT count(*) FROM pg_stat_activity WHERE :me = ANY(pg_blocking_pids(pid))")
    for _ in range(2000):
        # pg_stat_activity is read once per transaction unless its snapshot is dropped.
        session.execute(text("SELECT pg_stat_clear_snapshot()"))
        if session.execute(blocked, {"me": me}).scalar_one():
            return
        if not retry.is_alive():
            break
        time.sleep(0.01)
    raise AssertionError(f"the retry never waited for the first delivery's lock: {outcome}")


def test_a_retry_completes_indexing_that_the_first_delivery_did_not_finish(library: Library) -> None:
    shop = add_shop(library, "みなと商店")
    body = payload()
    first = submit_notice(library, shop, "n-1", body).report
    # As if the process had died between the commit and the drain: the index lacks the notice, the outbox has it.
    library.engine.rebuild(iter([]))
    with library.store.session() as session:
        enqueue(session, first.record_id, first.revision, "upsert")
    assert hit_ids(library, "すぐわく") == set()
    assert not submit_notice(library, shop, "n-1", body).created
    assert hit_ids(library, "すぐわく") == {first.record_id}
