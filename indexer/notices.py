"""Urgent notices pushed by shops (issue 5): validated, idempotent, clustered, updated, retracted, expired.

A shop sends a report under its own id (`shop_notice_id`). Each report is one `NoticeReportRow`; the notice a
citizen sees is one `notice` record per recall, built from the live reports that point at it:

- **Idempotent**: (shop, shop_notice_id) is unique in the table, so a retried POST finds its earlier report. Two
  retries racing each other both try to insert; the loser's transaction fails on the constraint and it returns
  the winner's report.
- **Clustered**: reports of one recall become one record with `reported_by` (the shops' names). Two reports are
  one recall when their makers are the same after normalization (NFKC, case, spaces, 株式会社/(株)…) and they share
  a JAN code or a model number, or, with neither, name the same product. A published notice of the maker's own
  (crawled) with a shared code is joined too: the shops are added to its `reported_by`.
- **One transaction**: reports, record, revision and outbox row commit together; then the outbox is drained, so a
  pushed notice is searchable as soon as the call returns (T29 freshness).

A record made from shop reports (source `SHOP_SOURCE`) is derived from its live reports: the first report's text,
the union of their codes, the highest severity and the latest valid_until. It is retracted when its last live
report is. A maker's record keeps its own text; reports only add their shops, `urgent` and a later valid_until.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from indexer.ingest import content_fingerprint, ingest_record
from indexer.library import Library
from indexer.notice_clusters import (
    MATCH_FIELDS,
    SHOP_SOURCE,
    cluster_key,
    cluster_keys,
    is_live,
    latest,
    live_reports,
    normalize_name,
    same_recall,
    shop_names,
    union,
    with_reports,
)
from indexer.store import NoticeReportRow, RecordRow, ShopRow
from schemas import JST, FieldError, RecordValidationError, record_to_dict, validate_record

SHOP_NOTICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
_SHOP_NOTICE_ID_RE = re.compile(SHOP_NOTICE_ID_PATTERN)
# What a shop may send: the notice's content. Provenance, status, urgency and who reported it are ours to set.
SHOP_FIELDS = (
    "title", "maker", "product", "jan_codes", "model_numbers", "lot_numbers", "hazard", "action", "contact",
    "severity", "valid_until", "url", "body", "categories", "region",
)  # fmt: skip
REQUIRED_FIELDS = ("maker", "product", "hazard", "action", "valid_until")
CODE_FIELDS = ("jan_codes", "model_numbers", "lot_numbers")
# A pin lasts at most this long; a shop extends it with PATCH, so a forgotten notice cannot stay pinned for years.
MAX_VALID_FOR = timedelta(days=366)
# Tighter than the record schema's: a pushed notice is read on a phone, and its request stays well within the API's
# body limit (search_app.notices_api.MAX_NOTICE_BYTES) whatever is sent within these.
MAX_BODY_CHARS = 10_000
MAX_CODES = 50
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
EXPIRED_SUMMARY = "掲載期限（valid_until）を過ぎたため期限切れにしました"



class NoticeError(ValueError):
    """A report that cannot be accepted as sent; the message is Japanese, for the shop."""


class NoticeValidationError(NoticeError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


class NoticeNotFound(LookupError):
    """No report with this id for this shop (another shop's report is not found either)."""


class NoticeConflict(NoticeError):
    """The request contradicts the report's state: an id reused for other content, or a change to a retracted one."""


@dataclass(frozen=True, slots=True)
class NoticeReport:
    """A shop's report as its API shows it, with the notice record it belongs to."""

    shop_id: int | None
    shop_notice_id: str
    record_id: str
    notice_status: str  # the record's status: published, expired or retracted
    reported_by: tuple[str, ...]
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    retracted_at: datetime | None
    revision: int

    @property
    def status(self) -> str:
        return "retracted" if self.retracted_at else "active"

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.astimezone(JST).isoformat() if value else None

        return {
            "shop_notice_id": self.shop_notice_id,
            "status": self.status,
            "record_id": self.record_id,
            "notice_status": self.notice_status,
            "revision": self.revision,
            "reported_by": list(self.reported_by),
            "notice": dict(self.payload),
            "created_at": when(self.created_at),
            "updated_at": when(self.updated_at),
            "retracted_at": when(self.retracted_at),
        }


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    report: NoticeReport
    created: bool  # False: a retry of a report already stored


# --- validation -----------------------------------------------------------------------------------------------


def check_shop_notice_id(value: Any) -> str:
    if not isinstance(value, str) or not _SHOP_NOTICE_ID_RE.fullmatch(value):
        raise NoticeValidationError(
            [FieldError("shop_notice_id", "英数字で始め、英数字と . _ : - だけを使って 200 文字以内で指定してください")]
        )
    return value


def default_title(maker: str, product: str) -> str:
    return f"{maker}「{product}」に関する緊急のお知らせ"[:500]


def validate_payload(payload: Any, now: datetime | None = None) -> dict[str, Any]:
    """The report's fields, checked by the notice schema and our rules, in canonical form; every problem is listed
    in Japanese (NoticeValidationError)."""
    if not isinstance(payload, Mapping):
        raise NoticeValidationError([FieldError("", "お知らせはオブジェクト（キーと値の組）で送ってください")])
    errors = [FieldError(str(name), "不明な項目です") for name in payload if name not in SHOP_FIELDS]
    given = {name: value for name, value in payload.items() if name in SHOP_FIELDS and value is not None}
    errors += [FieldError(name, "必須項目です") for name in REQUIRED_FIELDS if name not in given]
    if isinstance(given.get("body"), str) and len(given["body"]) > MAX_BODY_CHARS:
        errors.append(FieldError("body", f"{MAX_BODY_CHARS} 文字以内で入力してください"))
    errors += [
        FieldError(name, f"{MAX_CODES} 件以内にしてください")
        for name in CODE_FIELDS
        if isinstance(given.get(name), list) and len(given[name]) > MAX_CODES
    ]
    maker, product = given.get("maker"), given.get("product")
    title = given.get("title") or default_title(str(maker or ""), str(product or ""))
    candidate = {**given, "kind": "notice", "title": title, "provenance": "shop", "urgent": True}
    record: dict[str, Any] | None = None
    try:
        record = record_to_dict(validate_record(candidate))
    except RecordValidationError as exc:
        known = {error.field for error in errors}
        errors += [error for error in exc.errors if error.field.split(".")[0] not in known]
    if record is not None and record["valid_until"] is not None:
        valid_until = datetime.fromisoformat(record["valid_until"])
        now = now or datetime.now(UTC)
        if valid_until <= now:
            errors.append(FieldError("valid_until", "掲載期限は現在より後の日時にしてください"))
        elif valid_until > now + MAX_VALID_FOR:
            errors.append(FieldError("valid_until", "掲載期限は 1 年以内にしてください（延長は後から PATCH でできます）"))
    if errors or record is None:
        raise NoticeValidationError(errors)
    return {name: record[name] for name in SHOP_FIELDS if name in given}


# --- clustering -----------------------------------------------------------------------------------------------


def _lock_maker(session: Session, maker: str) -> None:
    """Serialize reports about one maker for this transaction, so two shops reporting one recall at the same moment
    cannot both create a record. SQLite's BEGIN IMMEDIATE already serializes every writer; PostgreSQL needs an
    advisory lock (a row lock cannot cover a row that does not exist yet)."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"notice-maker:{maker}".encode()).digest()[:8], "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})




def _find_cluster(session: Session, data: Mapping[str, Any], now: datetime, *, exclude: str | None = None) -> str | None:
    """The published, unexpired notice record this report belongs to, if any: through the reports' cluster keys
    first (an index lookup), then among all published notices, crawled ones included."""
    columns = [RecordRow.data[name] for name in MATCH_FIELDS]
    hashed = [hashlib.sha256(key.encode()).hexdigest() for key in cluster_keys(data)]
    by_key = (
        select(RecordRow.id, *columns)
        .join(NoticeReportRow, NoticeReportRow.record_id == RecordRow.id)
        .where(NoticeReportRow.cluster_key.in_(hashed), RecordRow.status == "published")
        .order_by(RecordRow.created_at, RecordRow.id)
    )
    # Published notices are few next to the records, and this runs once per report, not per search.
    every = (
        select(RecordRow.id, *columns)
        .where(RecordRow.kind == "notice", RecordRow.status == "published")
        .order_by(RecordRow.created_at, RecordRow.id)
    )
    for statement in (by_key, every):
        for record_id, *values in session.execute(statement):
            record = dict(zip(MATCH_FIELDS, values, strict=True))
            if record_id != exclude and is_live(record, now) and same_recall(record, data):
                return record_id
    return None


# --- the record a cluster of reports makes ----------------------------------------------------------------------


def _derived(row: RecordRow, reports: list[NoticeReportRow], names: dict[int, str], now: datetime) -> dict[str, Any]:
    """The record's data as its live reports make it (module docstring)."""
    data = dict(row.data)
    if row.source != SHOP_SOURCE:
        return with_reports(data, reports, names)  # a maker's (or another source's) notice: its text stays its own
    payloads = [report.payload for report in reports]
    reported_by = union([[names[r.shop_id]] for r in reports if r.shop_id in names])
    if not payloads:
        return {**data, "status": "retracted"}
    return _derived_data(data, payloads, reported_by, now)


def _derived_data(
    data: dict[str, Any], payloads: list[dict[str, Any]], reported_by: list[str], now: datetime
) -> dict[str, Any]:
    """A shop-made record's data from its live reports, oldest first: the first one's text and the others' codes."""
    first = payloads[0]
    data = {name: value for name, value in data.items() if name not in SHOP_FIELDS}
    data.update({name: value for name, value in first.items() if name not in CODE_FIELDS})
    data["title"] = first.get("title") or default_title(first["maker"], first["product"])
    data["organization"] = first["maker"]
    for name in CODE_FIELDS:
        data[name] = union(p.get(name) or () for p in payloads)
    data["severity"] = max((p.get("severity") or "medium" for p in payloads), key=SEVERITY_RANK.__getitem__)
    data["valid_until"] = latest(p.get("valid_until") for p in payloads)
    data["reported_by"] = reported_by
    data["urgent"] = True
    data["status"] = "published" if is_live(data, now) else "expired"
    return data


def _rebuild(session: Session, record_id: str, *, author: str, summary: str, now: datetime) -> None:
    row = session.get(RecordRow, record_id)
    if row is None:
        raise LookupError(f"notice record {record_id!r} is missing")
    reports = live_reports(session, [record_id])
    data = _derived(row, reports, shop_names(session, (r.shop_id for r in reports)), now)
    if content_fingerprint(data) != content_fingerprint(row.data):
        ingest_record(session, data, author=author, summary=summary)


def _new_record(
    session: Session, payload: dict[str, Any], reporter: str, now: datetime, *, author: str, summary: str
) -> str:
    """A record for a recall no notice covers yet, already as its first report makes it (one revision, not two)."""
    record_id = f"notice-shop-{secrets.token_hex(8)}"
    row = RecordRow(id=record_id, source=SHOP_SOURCE, data={"published_at": now.astimezone(JST).isoformat()})
    data = _derived_data(row.data, [payload], [reporter], now)
    ingest_record(session, {**data, "id": record_id, "kind": "notice", "provenance": "shop", "source": SHOP_SOURCE},
                  author=author, summary=summary)  # fmt: skip
    return record_id


# --- reading ----------------------------------------------------------------------------------------------------


def _report_row(session: Session, shop_id: int, shop_notice_id: str) -> NoticeReportRow | None:
    return session.scalar(
        select(NoticeReportRow).where(
            NoticeReportRow.shop_id == shop_id, NoticeReportRow.shop_notice_id == shop_notice_id
        )
    )


def _view(session: Session, report: NoticeReportRow) -> NoticeReport:
    record = session.get(RecordRow, report.record_id)
    assert record is not None  # a foreign key
    return NoticeReport(
        shop_id=report.shop_id,
        shop_notice_id=report.shop_notice_id,
        record_id=report.record_id,
        notice_status=record.status,
        reported_by=tuple(record.data.get("reported_by") or ()),
        payload=dict(report.payload),
        created_at=report.created_at,
        updated_at=report.updated_at,
        retracted_at=report.retracted_at,
        revision=record.revision,
    )


def get_notice(library: Library, shop_id: int, shop_notice_id: str) -> NoticeReport:
    with library.store.session(readonly=True) as session:
        report = _report_row(session, shop_id, shop_notice_id)
        if report is None:
            raise NoticeNotFound(shop_notice_id)
        return _view(session, report)


def list_notices(library: Library, shop_id: int | None, limit: int = 200) -> list[NoticeReport]:
    """The shop's reports (every shop's with None, for admins), newest first."""
    statement = select(NoticeReportRow).order_by(NoticeReportRow.created_at.desc(), NoticeReportRow.id.desc())
    if shop_id is not None:
        statement = statement.where(NoticeReportRow.shop_id == shop_id)
    with library.store.session(readonly=True) as session:
        reports = session.scalars(statement.limit(limit)).all()
        return [_view(session, report) for report in reports]


# --- writing ----------------------------------------------------------------------------------------------------


def _author(shop_id: int) -> str:
    return f"shop:{shop_id}"


def _shop_name(session: Session, shop_id: int) -> str:
    shop = session.get(ShopRow, shop_id)
    if shop is None or shop.disabled:
        raise NoticeNotFound(f"shop {shop_id}")
    return shop.name


def submit_notice(
    library: Library, shop_id: int, shop_notice_id: Any, payload: Any, *, now: datetime | None = None
) -> SubmitOutcome:
    """Store a shop's report and put it into its recall's notice; a retry returns the stored report.

    Raises NoticeValidationError (the fields, in Japanese) and NoticeConflict (the id was used for other content).
    """
    check_shop_notice_id(shop_notice_id)
    now = now or datetime.now(UTC)
    clean = validate_payload(payload, now)
    try:
        with library.store.session() as session:
            _lock_maker(session, normalize_name(clean["maker"]))
            existing = _report_row(session, shop_id, shop_notice_id)
            if existing is not None:
                outcome = _retried(session, existing, clean)
            else:
                outcome = _store_new_report(session, shop_id, shop_notice_id, clean, now)
    except IntegrityError:
        # A concurrent retry of the same report committed first: answer as its retry.
        with library.store.session(readonly=True) as session:
            existing = _report_row(session, shop_id, shop_notice_id)
            if existing is None:
                raise
            outcome = _retried(session, existing, clean)
    # A retry drains too: if indexing after the first delivery failed (the engine away), the retry completes it.
    library.index_pending()
    return outcome


def _store_new_report(
    session: Session, shop_id: int, shop_notice_id: str, clean: dict[str, Any], now: datetime
) -> SubmitOutcome:
    name = _shop_name(session, shop_id)
    author, summary = _author(shop_id), f"店舗「{name}」から緊急のお知らせ（{shop_notice_id}）"
    record_id = _find_cluster(session, clean, now)
    if record_id is None:
        record_id = _new_record(session, clean, name, now, author=author, summary=summary)
    report = NoticeReportRow(
        shop_id=shop_id,
        shop_notice_id=shop_notice_id,
        record_id=record_id,
        cluster_key=cluster_key(clean),
        payload=clean,
        created_at=now,
        updated_at=now,
    )
    session.add(report)
    session.flush()  # the unique constraint speaks here, before the record is rebuilt
    _rebuild(session, record_id, author=author, summary=summary, now=now)
    return SubmitOutcome(_view(session, report), created=True)


def _retried(session: Session, existing: NoticeReportRow, clean: dict[str, Any]) -> SubmitOutcome:
    if content_fingerprint(existing.payload) != content_fingerprint(clean):
        raise NoticeConflict(
            f"お知らせ ID「{existing.shop_notice_id}」はすでに別の内容で使われています。"
            "内容を変えるときは PATCH で更新し、別のお知らせには新しい ID を付けてください。"
        )
    return SubmitOutcome(_view(session, existing), created=False)


def update_notice(
    library: Library, shop_id: int, shop_notice_id: str, changes: Any, *, now: datetime | None = None
) -> NoticeReport:
    """PATCH (JSON Merge Patch, RFC 7396): the given fields replace the report's, null removes one. A change of
    maker or codes may move the report to another recall's notice."""
    if not isinstance(changes, Mapping):
        raise NoticeValidationError([FieldError("", "変更はオブジェクト（キーと値の組）で送ってください")])
    now = now or datetime.now(UTC)
    changes = dict(changes)
    if changes.pop("shop_notice_id", shop_notice_id) != shop_notice_id:
        raise NoticeValidationError([FieldError("shop_notice_id", "お知らせ ID は変更できません")])
    with library.store.session() as session:
        report = _report_row(session, shop_id, shop_notice_id)
        if report is None:
            raise NoticeNotFound(shop_notice_id)
        merged = {**report.payload, **changes}
        clean = validate_payload({name: value for name, value in merged.items() if value is not None}, now)
        if report.retracted_at is not None:
            raise NoticeConflict("取り下げたお知らせは変更できません。新しい ID で送り直してください。")
        if content_fingerprint(clean) == content_fingerprint(report.payload):
            return _view(session, report)
        _lock_maker(session, normalize_name(clean["maker"]))
        name = _shop_name(session, shop_id)
        author, summary = _author(shop_id), f"店舗「{name}」がお知らせを更新（{shop_notice_id}）"
        old_record = report.record_id
        report.payload, report.cluster_key, report.updated_at = clean, cluster_key(clean), now
        session.flush()
        if _derived_from_shops(session, old_record) and not _others(session, report):
            # Its own record: it stays there unless it now belongs to another recall's notice.
            target = _find_cluster(session, clean, now, exclude=old_record) or old_record
        elif same_recall(session.get(RecordRow, old_record).data, clean):
            target = old_record
        else:
            target = _find_cluster(session, clean, now, exclude=old_record)
        if target is None:
            target = _new_record(session, clean, name, now, author=author, summary=summary)
        report.record_id = target
        session.flush()
        for record_id in dict.fromkeys((old_record, target)):
            _rebuild(session, record_id, author=author, summary=summary, now=now)
        view = _view(session, report)
    library.index_pending()
    return view


def _others(session: Session, report: NoticeReportRow) -> bool:
    """Whether other live reports share this report's record."""
    return (
        session.scalar(
            select(NoticeReportRow.id).where(
                NoticeReportRow.record_id == report.record_id,
                NoticeReportRow.id != report.id,
                NoticeReportRow.retracted_at.is_(None),
            ).limit(1)
        )
        is not None
    )


def _derived_from_shops(session: Session, record_id: str) -> bool:
    row = session.get(RecordRow, record_id)
    return row is not None and row.source == SHOP_SOURCE


def retract_notice(library: Library, shop_id: int, shop_notice_id: str, *, now: datetime | None = None) -> NoticeReport:
    """Withdraw the shop's report; its notice is retracted when no live report remains. Retracting twice is one."""
    now = now or datetime.now(UTC)
    with library.store.session() as session:
        report = _report_row(session, shop_id, shop_notice_id)
        if report is None:
            raise NoticeNotFound(shop_notice_id)
        if report.retracted_at is not None:
            return _view(session, report)
        name = _shop_name(session, shop_id)
        report.retracted_at = report.updated_at = now
        session.flush()
        _rebuild(
            session, report.record_id, author=_author(shop_id),
            summary=f"店舗「{name}」がお知らせを取り下げ（{shop_notice_id}）", now=now,
        )  # fmt: skip
        view = _view(session, report)
    library.index_pending()
    return view


def expire_notices(library: Library, now: datetime | None = None) -> int:
    """Mark published notices whose valid_until has passed as expired: a revision by "system", then the index drops
    them, and they leave the pinned and active lists. Returns how many; a second run finds nothing to do."""
    now = now or datetime.now(UTC)
    expired = 0
    with library.store.session() as session:
        # Locked, so a concurrent run waits and then no longer sees these rows as published (PostgreSQL).
        notices = session.scalars(
            select(RecordRow)
            .where(
                RecordRow.kind == "notice",
                RecordRow.status == "published",
                RecordRow.data["valid_until"].as_string().is_not(None),
            )
            .with_for_update()
        ).all()
        for row in notices:
            if not is_live(row.data, now):
                ingest_record(session, {**row.data, "status": "expired"}, author="system", summary=EXPIRED_SUMMARY)
                expired += 1
    if expired:
        library.index_pending()
    return expired


__all__ = [
    "EXPIRED_SUMMARY",
    "SHOP_FIELDS",
    "SHOP_SOURCE",
    "NoticeConflict",
    "NoticeError",
    "NoticeNotFound",
    "NoticeReport",
    "NoticeValidationError",
    "SubmitOutcome",
    "cluster_key",
    "expire_notices",
    "get_notice",
    "list_notices",
    "retract_notice",
    "same_recall",
    "submit_notice",
    "update_notice",
]
