"""`library doctor` against real stores and engines: SQLite and PostgreSQL, tantivy, the local Redis.

Elasticsearch is only ever pointed at a closed loopback port here, to prove that an unreachable cluster is
reported clearly and quickly; no test pretends to be a cluster.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update

from indexer.config import Settings
from indexer.doctor import OUTBOX_STALE_SECONDS, DoctorReport, Status, redact_url, run_doctor
from indexer.library import Library
from indexer.store import MAX_OUTBOX_ATTEMPTS, OutboxRow, enqueue

REDIS_URL = os.environ.get("LIBRARY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHECK_KEYS = ["store", "migrations", "integrity", "engine", "broker", "crawler", "outbox", "index"]
CONTACT_URL = "https://library.example.jp/about/crawler"


def notice(record_id: str, title: str) -> dict[str, object]:
    return {
        "id": record_id,
        "kind": "notice",
        "title": title,
        "body": "発熱のおそれがあります。",
        "maker": "サンプル電機",
        "product": "ポケットチャージ",
        "hazard": "発熱",
        "action": "使用を中止してください",
        "provenance": "maker",
    }


@pytest.fixture(autouse=True)
def crawl_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment that configured its crawler; the crawler tests below change what they need."""
    for name in ("LIBRARY_CRAWL_ALLOW_HOSTS", "LIBRARY_CRAWL_DELAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIBRARY_CRAWL_CONTACT_URL", CONTACT_URL)


def closed_port() -> int:
    """A loopback port that nothing listens on: bound by us, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def statuses(report: DoctorReport) -> dict[str, Status]:
    return {check.key: check.status for check in report.checks}


def make_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    """Settings for this test only: whatever the environment says, no broker and the embedded engine."""
    values: dict[str, object] = {"search_engine": "tantivy", "elasticsearch_url": None, "broker_url": None}
    values.update(overrides)
    return Settings.from_env(data_dir=data_dir, database_url=database_url, **values)


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'library.db'}"


@pytest.fixture()
def settings(database_url: str, data_dir: Path) -> Settings:
    return make_settings(data_dir, database_url)


@pytest.fixture()
def library(settings: Settings) -> Iterator[Library]:
    """A migrated store with two published records, indexed by tantivy."""
    lib = Library.open(settings)
    for record_id, title in (("n-1", "モバイルバッテリー回収"), ("n-2", "電気ストーブ点検")):
        lib.ingest(notice(record_id, title), author="test", summary="doctor test")
    yield lib
    lib.close()


def test_a_healthy_deployment_is_all_ok(library: Library, settings: Settings) -> None:
    report = run_doctor(settings)
    assert [check.key for check in report.checks] == CHECK_KEYS
    assert statuses(report) == dict.fromkeys(CHECK_KEYS, Status.OK), report.render()
    assert report.exit_code == 0
    assert "索引 2 件" in report.check("index").message
    assert "未設定" in report.check("broker").message
    rendered = report.render()
    assert rendered.splitlines()[-1] == "結果: すべて正常（終了コード 0）"
    assert json.loads(report.dumps())["checks"][0] == report.to_json()["checks"][0]


def test_an_index_that_lost_documents_fails_with_the_fix(library: Library, settings: Settings) -> None:
    library.engine.rebuild([])  # the index forgot everything, and nothing is queued to bring it back
    report = run_doctor(settings)
    index = report.check("index")
    assert index.status is Status.FAIL
    assert "索引 0 件" in index.message and "公開レコード 2 件" in index.message
    assert "library reindex" in index.message
    assert report.exit_code == 2


def test_a_difference_explained_by_queued_updates_is_a_warning(library: Library, settings: Settings) -> None:
    library.engine.rebuild([])
    with library.store.session() as session:
        enqueue(session, "n-1", 1, "upsert")
    report = run_doctor(settings)
    assert report.check("index").status is Status.WARN
    assert report.check("outbox").status is Status.OK  # just queued: not stale
    assert report.exit_code == 1


def dead_letter(library: Library, record_id: str, revision: int) -> None:
    """An outbox row that failed as often as the outbox allows: never claimed again."""
    with library.store.session() as session:
        row = enqueue(session, record_id, revision, "upsert")
        session.flush()
        session.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row.id)
            .values(attempts=MAX_OUTBOX_ATTEMPTS, last_error="Elasticsearch で書き込みできませんでした")
        )


def test_dead_letters_missing_from_the_index_fail_and_show_the_last_error(
    library: Library, settings: Settings
) -> None:
    library.engine.delete([("n-1", 2)])  # the index lost the record the dead letter stood for
    dead_letter(library, "n-1", 1)
    outbox = run_doctor(settings).check("outbox")
    assert outbox.status is Status.FAIL
    assert "1 件" in outbox.message and "dead letter" in outbox.message
    assert "Elasticsearch で書き込みできませんでした" in outbox.message
    assert "library reindex" in outbox.message


def test_dead_letters_the_index_reflects_since_are_ok(library: Library, settings: Settings) -> None:
    library.engine.delete([("n-1", 2)])
    dead_letter(library, "n-1", 1)
    library.reindex()  # the fix the failure message suggests
    report = run_doctor(settings)
    outbox = report.check("outbox")
    assert outbox.status is Status.OK, outbox.message
    assert "dead letter 1 件" in outbox.message and "反映されています" in outbox.message
    assert report.exit_code == 0


def test_a_backlog_nobody_drains_is_a_warning(library: Library, settings: Settings) -> None:
    with library.store.session() as session:
        row = enqueue(session, "n-1", 1, "upsert")
        row.created_at = datetime.now(UTC) - timedelta(seconds=OUTBOX_STALE_SECONDS + 60)
    outbox = run_doctor(settings).check("outbox")
    assert outbox.status is Status.WARN
    assert "ワーカー" in outbox.message


def test_a_database_newer_than_the_program_fails(library: Library, settings: Settings) -> None:
    with library.store.session() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    report = run_doctor(settings)
    assert report.check("migrations").status is Status.FAIL
    assert "9999_from_the_future" in report.check("migrations").message
    # The index comparison needs a schema this program understands: reported as not checked, not crashed.
    assert report.check("index").status is Status.WARN


def test_an_unmigrated_database_is_a_warning(data_dir: Path) -> None:
    (data_dir / "library.db").touch()  # an empty SQLite file: a database without tables
    report = run_doctor(make_settings(data_dir, sqlite_url(data_dir)))
    assert report.check("store").status is Status.OK
    assert report.check("migrations").status is Status.WARN
    assert "library init" in report.check("migrations").message
    assert report.check("outbox").status is Status.WARN
    assert report.exit_code == 1


def test_a_missing_sqlite_file_is_reported_not_created(data_dir: Path) -> None:
    path = data_dir / "elsewhere" / "library.db"
    report = run_doctor(make_settings(data_dir, f"sqlite:///{path}"))
    assert report.check("store").status is Status.FAIL
    assert str(path) in report.check("store").message
    assert not path.exists()
    assert [check.key for check in report.checks] == CHECK_KEYS  # every check still has its line
    assert report.exit_code == 2


def test_a_file_that_is_not_a_database_fails_the_store_check(data_dir: Path) -> None:
    path = data_dir / "library.db"
    path.write_bytes(b"this is not an SQLite database, just bytes " * 100)
    report = run_doctor(make_settings(data_dir, f"sqlite:///{path}"))
    assert report.check("store").status is Status.FAIL
    assert "接続できません" in report.check("store").message
    assert report.check("engine").status is Status.OK  # the other checks still ran


def test_an_unreachable_postgres_fails_quickly(data_dir: Path) -> None:
    url = f"postgresql+psycopg://library:hunter2-secret@127.0.0.1:{closed_port()}/library"
    started = time.monotonic()
    report = run_doctor(make_settings(data_dir, url))
    assert time.monotonic() - started < 10
    assert report.check("store").status is Status.FAIL
    assert "hunter2-secret" not in report.render()


# --- Elasticsearch, unreachable -----------------------------------------------------------------------------


def test_an_unreachable_elasticsearch_fails_clearly_within_two_seconds(
    library: Library, data_dir: Path, database_url: str
) -> None:
    url = f"http://elastic:es-secret-password@127.0.0.1:{closed_port()}"
    settings = make_settings(data_dir, database_url, search_engine="elasticsearch", elasticsearch_url=url)
    import indexer.engines.elasticsearch_engine  # noqa: F401  (imported first: the timing is the check's)

    started = time.monotonic()
    report = run_doctor(settings)
    elapsed = time.monotonic() - started
    engine = report.check("engine")
    assert engine.status is Status.FAIL
    assert engine.message.startswith("Elasticsearch（http://elastic:***@127.0.0.1:")
    assert "応答しません" in engine.message
    assert elapsed < 2.5, f"the doctor took {elapsed:.1f} s with the cluster down"
    assert report.check("index").status is Status.WARN  # no count to compare, said so
    assert report.check("store").status is Status.OK  # the store is unaffected
    assert "es-secret-password" not in report.render() + report.dumps()
    assert report.exit_code == 2


# --- the broker ---------------------------------------------------------------------------------------------


def _redis_reachable() -> str | None:
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2):
            return None
    except OSError as exc:
        return f"Redis not reachable at {REDIS_URL}: {exc}"


@pytest.fixture()
def redis_url() -> str:
    reason = _redis_reachable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI machines run Redis: a silent skip would hide a broken broker check
        pytest.skip(reason)
    return REDIS_URL


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_reachable_redis_broker_answers_ping(library: Library, settings: Settings, redis_url: str) -> None:
    report = run_doctor(make_settings(settings.data_dir, settings.database_url, broker_url=redis_url))
    broker = report.check("broker")
    assert broker.status is Status.OK, broker.message
    assert "PING" in broker.message


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unreachable_broker_fails_quickly(library: Library, settings: Settings) -> None:
    broker_url = f"redis://:redis-secret@127.0.0.1:{closed_port()}/0"
    started = time.monotonic()
    report = run_doctor(make_settings(settings.data_dir, settings.database_url, broker_url=broker_url))
    assert time.monotonic() - started < 5
    broker = report.check("broker")
    assert broker.status is Status.FAIL
    assert "redis://:***@127.0.0.1:" in broker.message
    assert "redis-secret" not in report.render()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_broker_it_cannot_check_is_a_warning(library: Library, settings: Settings) -> None:
    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    report = run_doctor(make_settings(settings.data_dir, settings.database_url, broker_url=amqp))
    assert report.check("broker").status is Status.WARN


# --- the crawler's settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_crawlers_user_agent_is_shown(library: Library, settings: Settings) -> None:
    crawler = run_doctor(settings).check("crawler")
    assert crawler.status is Status.OK
    assert crawler.message == f"User-Agent: SocialLibraryBot/0.1 (+{CONTACT_URL})"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_placeholder_contact_url_is_a_warning(library: Library, settings: Settings,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIBRARY_CRAWL_CONTACT_URL")  # the default: https://example.invalid/bot
    report = run_doctor(settings)
    crawler = report.check("crawler")
    assert crawler.status is Status.WARN and report.exit_code == 1
    assert "仮の URL（https://example.invalid/bot）" in crawler.message
    assert "LIBRARY_CRAWL_CONTACT_URL" in crawler.message
    monkeypatch.setenv("LIBRARY_CRAWL_CONTACT_URL", "mailto:bot@example.jp")
    assert run_doctor(settings).check("crawler").status is Status.WARN  # not a page a site's operator can open


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_crawl_settings_fail_and_allowed_private_hosts_are_named(library: Library, settings: Settings,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBRARY_CRAWL_DELAY", "soon")
    crawler = run_doctor(settings).check("crawler")
    assert crawler.status is Status.FAIL and "LIBRARY_CRAWL_DELAY" in crawler.message
    monkeypatch.delenv("LIBRARY_CRAWL_DELAY")
    monkeypatch.setenv("LIBRARY_CRAWL_ALLOW_HOSTS", "intranet.city.local,10.1.0.0/16")
    crawler = run_doctor(settings).check("crawler")
    assert crawler.status is Status.OK
    assert crawler.message.endswith("内部ネットワークで許可したホスト: intranet.city.local、10.1.0.0/16")


# --- the report ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://elastic:pw@es:9200", "http://elastic:***@es:9200"),
        ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
        ("https://es.example.jp:9243/", "https://es.example.jp:9243/"),
        ("redis://user@redis:6379", "redis://user@redis:6379"),
    ],
)
def test_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown
