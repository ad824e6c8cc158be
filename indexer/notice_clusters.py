"""Which notices are one recall, and what shops' reports add to a notice of another source (issue 5).

Shared by `indexer.notices` (a shop's report arrives) and `indexer.ingest` (a maker's notice arrives, from a crawl
or an import), so that the order in which the two arrive does not matter:

- a shop reports a recall whose maker notice is already published: the report joins the maker's record;
- the maker's notice arrives after shops reported it: the shops' reports move onto the maker's record, and the
  record the shops' reports had made is retracted (one recall, one notice);
- the maker's page is crawled again: its record keeps what the reports add (報告した店舗, urgent, a later
  valid_until), as those come from the reports and not from the page.

Nothing here imports `indexer.ingest`, so ingest can call it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from indexer.store import NoticeReportRow, RecordRow, ShopRow

SHOP_SOURCE = "shop-notices"

# Legal-entity words that shops write or leave out at will: サンプル電機 and 株式会社サンプル電機 are one maker.
_ENTITY_WORDS = re.compile(r"株式会社|有限会社|合同会社|\(株\)|\(有\)|\(同\)|co\.?,?ltd\.?|inc\.?|corp(oration)?\.?")
_NOT_WORD = re.compile(r"[\s\W_]+")
# What clustering reads of a notice: a few short fields, not the whole document (bodies can be long).
MATCH_FIELDS = ("maker", "product", "jan_codes", "model_numbers", "valid_until")


def normalize_name(value: str) -> str:
    folded = unicodedata.normalize("NFKC", value).casefold()
    return _NOT_WORD.sub("", _ENTITY_WORDS.sub("", folded))


def _codes(data: Mapping[str, Any], name: str) -> set[str]:
    return {normalize_name(str(code)) for code in data.get(name) or () if str(code).strip()}


def cluster_keys(data: Mapping[str, Any]) -> list[str]:
    """What identifies the recall: maker + each JAN code and model number, or maker + product without them. The
    first is the report's stored cluster key."""
    maker = normalize_name(str(data.get("maker") or ""))
    keys = [f"{maker}|jan:{code}" for code in sorted(_codes(data, "jan_codes"))]
    keys += [f"{maker}|model:{code}" for code in sorted(_codes(data, "model_numbers"))]
    if not keys:
        keys = [f"{maker}|product:{normalize_name(str(data.get('product') or ''))}"]
    return keys


def cluster_key(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(cluster_keys(data)[0].encode()).hexdigest()


def same_recall(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    if normalize_name(str(a.get("maker") or "")) != normalize_name(str(b.get("maker") or "")):
        return False
    coded = False
    for name in ("jan_codes", "model_numbers"):
        mine, theirs = _codes(a, name), _codes(b, name)
        if mine & theirs:
            return True
        coded = coded or bool(mine) or bool(theirs)
    return not coded and normalize_name(str(a.get("product") or "")) == normalize_name(str(b.get("product") or ""))


def is_live(data: Mapping[str, Any], now: datetime) -> bool:
    valid_until = data.get("valid_until")
    return not valid_until or datetime.fromisoformat(valid_until) > now


def union(values: Iterable[Iterable[str]]) -> list[str]:
    return list(dict.fromkeys(value for group in values for value in group))


def latest(values: Iterable[str | None]) -> str | None:
    dates = [value for value in values if value]
    return max(dates, key=datetime.fromisoformat) if dates else None


def shop_names(session: Session, shop_ids: Iterable[int | None]) -> dict[int, str]:
    ids = {shop_id for shop_id in shop_ids if shop_id is not None}
    if not ids:
        return {}
    return dict(session.execute(select(ShopRow.id, ShopRow.name).where(ShopRow.id.in_(ids))).all())


def live_reports(session: Session, record_ids: Iterable[str]) -> list[NoticeReportRow]:
    """The unretracted reports of these records, oldest first."""
    ids = list(record_ids)
    if not ids:
        return []
    return list(
        session.scalars(
            select(NoticeReportRow)
            .where(NoticeReportRow.record_id.in_(ids), NoticeReportRow.retracted_at.is_(None))
            .order_by(NoticeReportRow.created_at, NoticeReportRow.id)
        )
    )


def with_reports(data: dict[str, Any], reports: list[NoticeReportRow], names: dict[int, str]) -> dict[str, Any]:
    """A notice of the maker's own (or of any source but the shops) with what its shops' reports add: its text
    stays its own; the shops go into reported_by, it is urgent while any report is live, and its valid_until is
    the latest of its own and the reports' (a notice without a valid_until of its own keeps none)."""
    data = dict(data)
    data["reported_by"] = union([[names[r.shop_id]] for r in reports if r.shop_id in names])
    if reports:
        data["urgent"] = True
        if data.get("valid_until"):
            data["valid_until"] = latest([data["valid_until"], *(r.payload.get("valid_until") for r in reports)])
    return data


def shop_clusters_of(session: Session, record: Mapping[str, Any], now: datetime, *, exclude: str) -> list[str]:
    """The published, unexpired records made by shops' reports that are the same recall as `record`."""
    columns = [RecordRow.data[name] for name in MATCH_FIELDS]
    statement = (
        select(RecordRow.id, *columns)
        .where(RecordRow.kind == "notice", RecordRow.status == "published", RecordRow.source == SHOP_SOURCE)
        .order_by(RecordRow.created_at, RecordRow.id)
    )
    found = []
    for record_id, *values in session.execute(statement):
        candidate = dict(zip(MATCH_FIELDS, values, strict=True))
        if record_id != exclude and is_live(candidate, now) and same_recall(candidate, record):
            found.append(record_id)
    return found


def gather_reports(
    session: Session, record_id: str, record: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], list[str]]:
    """For ingest, a notice arriving from a source other than the shops: (the record with its reports' additions,
    the shop-made records whose reports it takes over). The caller moves those reports with `take_over` once the
    record's row exists."""
    if record.get("kind") != "notice" or record.get("source") == SHOP_SOURCE:
        return record, []
    absorbed = shop_clusters_of(session, record, now, exclude=record_id) if record.get("status") == "published" else []
    reports = live_reports(session, [record_id, *absorbed])
    if not reports:
        return record, absorbed
    return with_reports(record, reports, shop_names(session, (r.shop_id for r in reports))), absorbed


def take_over(session: Session, record_id: str, absorbed: list[str]) -> None:
    """Point the live reports of the absorbed shop-made records at `record_id`."""
    for report in live_reports(session, absorbed):
        report.record_id = record_id
    session.flush()
