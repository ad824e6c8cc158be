"""`library doctor`: is this deployment able to serve, and does the index agree with the store?

Each check ends ok, warn or fail with a Japanese message an operator can act on:

| key | what is checked |
|---|---|
| store | the database answers and its durability settings are safe (start-up's own self-check, T27) |
| migrations | the schema version against this program's migrations (behind: applied at the next start) |
| integrity | SQLite's PRAGMA integrity_check; on PostgreSQL, that it answers a query |
| engine | the configured search engine answers a count (Elasticsearch: the cluster is reachable) |
| broker | when LIBRARY_BROKER_URL is set: a Redis PING with a short timeout |
| crawler | the crawl settings (LIBRARY_CRAWL_*) are valid, and the User-Agent's contact URL is not the placeholder |
| outbox | index updates waiting, and dead letters (no longer retried) that the index still does not reflect |
| index | the index's document count against the store's published records (T25's convergence) |

Exit code (the same scheme as monitoring plugins, so the command can feed an alert directly):
0 every check is ok; 1 at least one warning and no failure; 2 at least one failure.

The doctor only reads: it never migrates the database, and a missing SQLite file is reported, not created. It
opens the search engine exactly as the service does, which for an empty Elasticsearch cluster creates the
first (empty) index, as the service's first request would. Credentials never appear in its output: every URL
it shows has its password replaced by ***.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, make_url, select
from sqlalchemy.exc import SQLAlchemyError

from indexer.config import Settings
from indexer.engines import open_engine
from indexer.engines.base import EngineError, EngineQuery, Filters, SearchEngine
from indexer.store import (
    MAX_OUTBOX_ATTEMPTS,
    OutboxRow,
    RecordRow,
    Store,
    UnsafeStorageSettings,
    UnsupportedDatabase,
    dead_letter_count,
    pending_count,
    published_count,
)
from indexer.store.db import MIGRATIONS_DIR

# Seconds to wait for PostgreSQL or Redis to accept a connection; the doctor must answer even when one hangs.
CONNECT_TIMEOUT = 5
BROKER_TIMEOUT = 2.0
# Dead letters whose records are compared with the index, at most (one search by id).
DEAD_LETTER_SAMPLE = 1000
# T25 (production): the outbox converges within visibility_timeout + sweep interval = 300 s + 30 s. Work that
# has waited longer means nothing is draining (no worker, or the engine keeps failing).
OUTBOX_STALE_SECONDS = 330


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def label(self) -> str:
        return {"ok": "正常", "warn": "警告", "fail": "異常"}[self.value]

    @property
    def rank(self) -> int:
        return {"ok": 0, "warn": 1, "fail": 2}[self.value]


@dataclass(frozen=True, slots=True)
class Check:
    key: str  # stable identifier for scripts and monitoring
    label: str  # Japanese heading shown to the operator
    status: Status
    message: str


@dataclass(frozen=True, slots=True)
class DoctorReport:
    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        return max((check.status for check in self.checks), key=lambda status: status.rank, default=Status.OK)

    @property
    def exit_code(self) -> int:
        """0: all ok; 1: warnings only; 2: at least one failure."""
        return self.status.rank

    def check(self, key: str) -> Check:
        for check in self.checks:
            if check.key == key:
                return check
        raise KeyError(key)

    def render(self) -> str:
        lines = ["社会ライブラリの点検"]
        lines += [f"[{check.status.label}] {check.label}: {check.message}" for check in self.checks]
        summary = {Status.OK: "すべて正常", Status.WARN: "警告あり", Status.FAIL: "異常あり"}[self.status]
        lines.append(f"結果: {summary}（終了コード {self.exit_code}）")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "checks": [
                {
                    "key": check.key,
                    "label": check.label,
                    "status": check.status.value,
                    "message": check.message,
                }
                for check in self.checks
            ],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, indent=2)


# --- helpers ------------------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _reason(error: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's wrapper text and documentation link."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    return text[0] if text else type(original).__name__


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _store_url(settings: Settings) -> Any:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})
    return url


def _not_checked(key: str, label: str, why: str) -> Check:
    return Check(key, label, Status.WARN, f"確認できませんでした（{why}）")


# --- checks -------------------------------------------------------------------------------------------------


def _open_store(settings: Settings) -> tuple[Store | None, Check]:
    label = "データベース"
    url = _store_url(settings)
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database).expanduser()
        if not path.exists():
            # Opening it would create an empty file and hide the real problem (a wrong LIBRARY_DATA_DIR).
            return None, Check(
                "store", label, Status.FAIL, f"{path} がありません。`library init` で作成してください"
            )
    try:
        store = Store(url)
    except UnsupportedDatabase as exc:
        return None, Check("store", label, Status.FAIL, str(exc))
    try:
        store.self_check()
    except UnsafeStorageSettings as exc:
        # Still readable: the other checks run, so the operator sees everything at once.
        return store, Check("store", label, Status.FAIL, str(exc))
    except SQLAlchemyError as exc:
        store.dispose()
        return None, Check("store", label, Status.FAIL, f"{shown} に接続できません: {_reason(exc)}")
    return store, Check(
        "store", label, Status.OK, f"{store.dialect}（{shown}）に接続しました。耐久性の設定は安全です"
    )


def _check_migrations(store: Store) -> tuple[Check, bool]:
    """(the check, whether the schema is at this program's head)."""
    label = "マイグレーション"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    script = ScriptDirectory.from_config(config)
    heads = set(script.get_heads())
    try:
        with store.session(readonly=True) as session:
            current = set(MigrationContext.configure(session.connection()).get_current_heads())
    except SQLAlchemyError as exc:
        return Check("migrations", label, Status.FAIL, f"版を読めません: {_reason(exc)}"), False
    head_text = "、".join(sorted(heads))
    if current == heads:
        return Check("migrations", label, Status.OK, f"最新の版です（{head_text}）"), True
    if not current:
        return (
            Check(
                "migrations",
                label,
                Status.WARN,
                "まだ適用されていません。`library init` を実行するか、サービスを起動すると適用されます",
            ),
            False,
        )
    known = {revision.revision for revision in script.walk_revisions()}
    current_text = "、".join(sorted(current))
    if current - known:
        return (
            Check(
                "migrations",
                label,
                Status.FAIL,
                f"データベースの版 {current_text} をこのプログラムは知りません"
                f"（より新しい版のプログラムが更新したデータベースです。プログラムの版 {head_text}）",
            ),
            False,
        )
    return (
        Check(
            "migrations",
            label,
            Status.WARN,
            f"データベースは版 {current_text}、プログラムは版 {head_text} です。"
            "次の起動時に自動で適用されます",
        ),
        False,
    )


def _check_integrity(store: Store) -> Check:
    label = "整合性"
    try:
        result = store.integrity_check()
    except SQLAlchemyError as exc:
        return Check("integrity", label, Status.FAIL, f"検査できません: {_reason(exc)}")
    if result != "ok":
        return Check("integrity", label, Status.FAIL, f"問題が見つかりました: {result[:500]}")
    how = "PRAGMA integrity_check は ok です" if store.dialect == "sqlite" else "問い合わせに応答しました"
    return Check("integrity", label, Status.OK, how)


def _describe_engine(settings: Settings) -> str:
    if settings.search_engine == "elasticsearch" and settings.elasticsearch_url:
        return f"Elasticsearch（{redact_url(settings.elasticsearch_url)}）"
    return f"{settings.search_engine}（{settings.index_dir}）"


def _check_engine(settings: Settings) -> tuple[Check, SearchEngine | None, int | None]:
    """(the check, the open engine or None, its document count or None)."""
    label = "検索エンジン"
    described = _describe_engine(settings)
    started = time.monotonic()
    try:
        engine = open_engine(settings)
    except EngineError as exc:
        return Check("engine", label, Status.FAIL, f"{described}を開けません: {exc}"), None, None
    try:
        indexed = engine.count()
    except EngineError as exc:
        engine.close()
        return (
            Check(
                "engine", label, Status.FAIL, f"{described}が応答しません（{_elapsed_ms(started)} ms）: {exc}"
            ),
            None,
            None,
        )
    message = f"{described}が応答しました（索引 {indexed} 件、{_elapsed_ms(started)} ms）"
    return Check("engine", label, Status.OK, message), engine, indexed


def _check_broker(settings: Settings) -> Check:
    label = "ブローカー"
    if not settings.broker_url:
        return Check(
            "broker", label, Status.OK, "未設定です。バックグラウンド処理は各プロセスの中で実行されます"
        )
    shown = redact_url(settings.broker_url)
    if urlsplit(settings.broker_url).scheme not in ("redis", "rediss"):
        return Check("broker", label, Status.WARN, f"{shown} は点検できません（Redis のみ対応しています）")
    import redis  # only where a broker is configured; celery[redis] brings it

    client = redis.Redis.from_url(
        settings.broker_url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT
    )
    started = time.monotonic()
    try:
        client.ping()
    except redis.RedisError as exc:
        return Check("broker", label, Status.FAIL, f"Redis（{shown}）に接続できません: {exc}")
    finally:
        client.close()
    answered = f"Redis（{shown}）が PING に応答しました（{_elapsed_ms(started)} ms）"
    return Check("broker", label, Status.OK, answered)


def _check_crawler() -> Check:
    """The crawlers' settings as the fetcher reads them: a site's operator must be able to reach us (RFC 9309
    and politeness: the User-Agent names a page about the bot)."""
    # Imported here, as the CLI does: the doctor checks the whole deployment, crawlers included.
    from crawlers.policy import DEFAULT_CONTACT_URL, FetchPolicy

    label = "クローラー"
    try:
        policy = FetchPolicy.from_env()
    except ValueError as exc:
        return Check("crawler", label, Status.FAIL, f"設定が正しくありません: {exc}")
    if policy.contact_url == DEFAULT_CONTACT_URL:
        return Check(
            "crawler",
            label,
            Status.WARN,
            f"User-Agent の連絡先が仮の URL（{DEFAULT_CONTACT_URL}）のままです。取得先のサイトの管理者が"
            "問い合わせられるよう、LIBRARY_CRAWL_CONTACT_URL にこのライブラリのクローラーについて説明し"
            "連絡先を載せたページの URL を設定してください",
        )
    contact = urlsplit(policy.contact_url)
    if contact.scheme not in ("http", "https") or not contact.netloc:
        return Check(
            "crawler",
            label,
            Status.WARN,
            f"LIBRARY_CRAWL_CONTACT_URL={policy.contact_url[:200]!r} は http または https の URL ではありません",
        )
    allowed = sorted(policy.allow.names) + [str(network) for network in policy.allow.networks]
    private = f"。内部ネットワークで許可したホスト: {'、'.join(allowed)}" if allowed else ""
    return Check("crawler", label, Status.OK, f"User-Agent: {policy.user_agent}{private}")


@dataclass(frozen=True, slots=True)
class _Backlog:
    waiting: int  # unprocessed and still retried
    dead: int
    oldest_age: float | None  # seconds since the oldest waiting row was queued
    last_error: str | None  # of the newest dead letter
    # Dead-lettered records the index does not reflect; None when that could not be determined.
    unresolved: int | None = None

    @property
    def stuck(self) -> int:
        """Dead letters still missing from the index (all of them, when the index could not be asked)."""
        return self.dead if self.unresolved is None else self.unresolved


_DEAD = (OutboxRow.processed_at.is_(None), OutboxRow.attempts >= MAX_OUTBOX_ATTEMPTS)


def _read_backlog(store: Store) -> _Backlog:
    with store.session(readonly=True) as session:
        dead = dead_letter_count(session)
        waiting = pending_count(session) - dead
        retried = OutboxRow.processed_at.is_(None), OutboxRow.attempts < MAX_OUTBOX_ATTEMPTS
        oldest = session.scalar(select(func.min(OutboxRow.created_at)).where(*retried))
        last_error = None
        if dead:
            last_error = session.scalar(
                select(OutboxRow.last_error).where(*_DEAD).order_by(OutboxRow.id.desc()).limit(1)
            )
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest else None
    return _Backlog(waiting=waiting, dead=dead, oldest_age=age, last_error=last_error)


def _unresolved_dead_letters(store: Store, engine: SearchEngine) -> int | None:
    """How many dead-lettered records the index still does not reflect (a later drain or a reindex may have
    written them since), or None when there are too many to look up.

    Reflected means what T25 asks for: a published record indexed at its current revision or newer, any other
    record absent from the index.
    """
    with store.session(readonly=True) as session:
        dead_ids = select(OutboxRow.record_id).where(*_DEAD).distinct().limit(DEAD_LETTER_SAMPLE + 1)
        ids = list(session.scalars(dead_ids))
        if len(ids) > DEAD_LETTER_SAMPLE:
            return None
        records: dict[str, tuple[int, str]] = {
            row.id: (row.revision, row.status)
            for row in session.execute(
                select(RecordRow.id, RecordRow.revision, RecordRow.status).where(RecordRow.id.in_(ids))
            )
        }
    found = engine.search(EngineQuery(filters=Filters(ids=tuple(ids)), limit=len(ids), facets=()))
    indexed = {hit.id: hit.document.revision for hit in found.hits}

    def reflected(record_id: str) -> bool:
        current = records.get(record_id)  # None: the record itself is gone, so must its document be
        if current is not None and current[1] == "published":
            return indexed.get(record_id, -1) >= current[0]
        return record_id not in indexed

    return sum(1 for record_id in ids if not reflected(record_id))


def _check_outbox(backlog: _Backlog) -> Check:
    label = "索引の更新待ち"
    if backlog.dead and not backlog.stuck:
        return Check(
            "outbox",
            label,
            Status.OK,
            f"未反映 {backlog.waiting} 件。dead letter {backlog.dead} 件はその後すべて索引に反映されています",
        )
    if backlog.stuck:
        error = f"最後のエラー: {backlog.last_error[:300]}。" if backlog.last_error else ""
        return Check(
            "outbox",
            label,
            Status.FAIL,
            f"{backlog.stuck} 件が {MAX_OUTBOX_ATTEMPTS} 回失敗し、再試行されず索引に反映されていません"
            f"（dead letter）。{error}"
            "原因を取り除いたあと `library reindex` で索引をデータベースから作り直してください",
        )
    if backlog.waiting and backlog.oldest_age is not None and backlog.oldest_age > OUTBOX_STALE_SECONDS:
        return Check(
            "outbox",
            label,
            Status.WARN,
            f"{backlog.waiting} 件が未反映で、最も古いものは {backlog.oldest_age:.0f} 秒前のものです"
            "（ワーカーが止まっているか、検索エンジンへの書き込みが失敗し続けています）",
        )
    return Check("outbox", label, Status.OK, f"未反映 {backlog.waiting} 件、dead letter 0 件")


def _published_count(store: Store) -> int:
    with store.session(readonly=True) as session:
        return published_count(session)


def _check_index(store: Store, indexed: int, backlog: _Backlog) -> Check:
    label = "索引の件数"
    published = _published_count(store)
    if indexed == published:
        return Check(
            "index",
            label,
            Status.OK,
            f"索引 {indexed} 件、データベースの公開レコード {published} 件で一致しています",
        )
    numbers = f"索引 {indexed} 件、データベースの公開レコード {published} 件（差 {indexed - published:+d}）"
    if backlog.waiting and not backlog.stuck:
        return Check(
            "index",
            label,
            Status.WARN,
            f"{numbers}。未反映の {backlog.waiting} 件が反映されれば一致するはずです",
        )
    return Check(
        "index",
        label,
        Status.FAIL,
        f"{numbers}。索引がデータベースとずれています。`library reindex` で作り直してください",
    )


def _guarded(key: str, label: str, check: Callable[[], Check]) -> Check:
    """A database error in one check is that check's failure, not the end of the report."""
    try:
        return check()
    except SQLAlchemyError as exc:
        return Check(key, label, Status.FAIL, f"データベースを読めません: {_reason(exc)}")


# --- the report ---------------------------------------------------------------------------------------------


def run_doctor(settings: Settings) -> DoctorReport:
    """Run every check against the deployment `settings` describe; never raises for an unhealthy service."""
    checks: list[Check] = []
    store, store_check = _open_store(settings)
    checks.append(store_check)
    engine: SearchEngine | None = None
    try:
        schema_ready = False
        if store is not None:
            migrations, schema_ready = _check_migrations(store)
            checks += [migrations, _check_integrity(store)]
        else:
            checks += [
                _not_checked("migrations", "マイグレーション", "データベースに接続できません"),
                _not_checked("integrity", "整合性", "データベースに接続できません"),
            ]

        engine_check, engine, indexed = _check_engine(settings)
        checks += [engine_check, _check_broker(settings), _check_crawler()]

        if store is None or not schema_ready:
            why = "データベースに接続できません" if store is None else "データベースの版が最新ではありません"
            checks += [
                _not_checked("outbox", "索引の更新待ち", why),
                _not_checked("index", "索引の件数", why),
            ]
            return DoctorReport(tuple(checks))
        try:
            backlog = _read_backlog(store)
            if backlog.dead and engine is not None:
                backlog = replace(backlog, unresolved=_unresolved_dead_letters(store, engine))
        except SQLAlchemyError as exc:
            failed = Check(
                "outbox", "索引の更新待ち", Status.FAIL, f"データベースを読めません: {_reason(exc)}"
            )
            checks += [failed, _not_checked("index", "索引の件数", "更新待ちを読めません")]
            return DoctorReport(tuple(checks))
        except EngineError:
            # Asking the index failed: the dead letters count as unreflected (unresolved stays None).
            backlog = _read_backlog(store)
        checks.append(_check_outbox(backlog))
        if indexed is None:
            checks.append(_not_checked("index", "索引の件数", "検索エンジンが応答しません"))
        else:
            ready_store, count = store, indexed
            checks.append(_guarded("index", "索引の件数", lambda: _check_index(ready_store, count, backlog)))
        return DoctorReport(tuple(checks))
    finally:
        if engine is not None:
            engine.close()
        if store is not None:
            store.dispose()
