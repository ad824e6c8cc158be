"""Store: migrations match the models, connections are durable (T27), sessions commit or roll back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.exc import InternalError

from indexer.config import Settings
from indexer.store import Base, EngineStateRow, Store, UnsafeStorageSettings, UnsupportedDatabase
from indexer.store.db import MIGRATIONS_DIR


def test_migrate_from_empty_matches_the_models(database_url: str) -> None:
    store = Store(database_url)
    try:
        assert inspect(store.engine).get_table_names() == []
        store.migrate()
        store.migrate()  # at head already: nothing to do, nothing fails
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert context.get_current_revision() == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
            assert compare_metadata(context, Base.metadata) == []
        assert {"alembic_version", "records", "revisions", "outbox", "engine_state"} <= set(
            inspect(store.engine).get_table_names()
        )
    finally:
        store.dispose()


def test_sqlite_connections_are_durable_and_wait_for_locks(data_dir: Path) -> None:
    store = Store(f"sqlite:///{data_dir / 'library.db'}")
    try:
        with store.engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 10000}
    finally:
        store.dispose()


def test_from_settings_creates_the_sqlite_directory(data_dir: Path) -> None:
    database = data_dir / "nested" / "deeper" / "library.db"
    store = Store.from_settings(Settings.from_env(database_url=f"sqlite:///{database}"))
    try:
        store.migrate()
        assert database.is_file()
        assert store.dialect == "sqlite"
    finally:
        store.dispose()


def test_default_settings_open_a_sqlite_store_in_the_data_directory(data_dir: Path) -> None:
    store = Store.from_settings(Settings.from_env())
    try:
        store.self_check()
        assert (data_dir / "library.db").is_file()
    finally:
        store.dispose()


def test_only_sqlite_and_postgresql_are_supported() -> None:
    with pytest.raises(UnsupportedDatabase, match="mysql"):
        Store("mysql+pymysql://user@localhost/library")


def test_self_check_accepts_the_defaults(store: Store) -> None:
    store.self_check()
    assert store.integrity_check() == "ok"


def _run(statement: str) -> Callable[[Any], None]:
    """A connect hook that weakens one setting on every new connection, as a careless deployment might."""

    def weaken(dbapi_connection: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()
        dbapi_connection.commit()  # PostgreSQL: a SET in a transaction that is rolled back would not stick

    return weaken


@pytest.mark.parametrize(
    ("statement", "setting"),
    [
        ("PRAGMA synchronous=OFF", "synchronous"),
        ("PRAGMA synchronous=NORMAL", "synchronous"),
        ("PRAGMA journal_mode=DELETE", "journal_mode"),
        ("PRAGMA foreign_keys=OFF", "foreign_keys"),
        ("PRAGMA busy_timeout=100", "busy_timeout"),
    ],
)
def test_self_check_refuses_unsafe_sqlite(data_dir: Path, statement: str, setting: str) -> None:
    with pytest.raises(UnsafeStorageSettings, match=f"PRAGMA {setting}="):
        Store.open(f"sqlite:///{data_dir / 'library.db'}", migrate=True, after_connect=_run(statement))


@pytest.mark.postgres
def test_self_check_refuses_synchronous_commit_off(postgres_url: str) -> None:
    with pytest.raises(UnsafeStorageSettings, match="synchronous_commit=off"):
        Store.open(postgres_url, migrate=True, after_connect=_run("SET synchronous_commit = off"))


def test_session_commits_on_success_and_rolls_back_on_error(store: Store) -> None:
    with store.session() as session:
        session.add(EngineStateRow(key="last_full_reindex", value={"engine": "tantivy"}))
    with pytest.raises(RuntimeError), store.session() as session:
        session.add(EngineStateRow(key="half_done", value=1))
        session.flush()
        raise RuntimeError("boom")
    with store.session(readonly=True) as session:
        assert session.scalars(select(EngineStateRow.key)).all() == ["last_full_reindex"]


def test_readers_do_not_wait_for_a_writer(store: Store) -> None:
    with store.session() as writer:
        writer.add(EngineStateRow(key="uncommitted", value=True))
        writer.flush()  # the write lock is held from here until the block ends
        with store.session(readonly=True) as reader:
            assert reader.get(EngineStateRow, "uncommitted") is None


@pytest.mark.postgres
def test_readonly_sessions_cannot_write_on_postgresql(postgres_url: str) -> None:
    store = Store.open(postgres_url, migrate=True)
    try:
        with (
            pytest.raises(InternalError, match="read-only transaction"),
            store.session(readonly=True) as session,
        ):
            session.add(EngineStateRow(key="nope", value=None))
    finally:
        store.dispose()


def test_sqlite_finds_notices_by_kind_and_status_through_one_index(data_dir: Path) -> None:
    """SQLite keeps no statistics: with an index per column it read every published record to find the few
    notices (0.25 s at 100k records, once per pushed notice per web worker; benchmarks/load_t29.py)."""
    from search_app.notices import _URGENT

    store = Store.open(f"sqlite:///{data_dir / 'library.db'}", migrate=True)
    try:
        compiled = _URGENT.compile(dialect=store.engine.dialect)
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        with store.engine.connect() as connection:
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params).all()
        assert any("ix_records_kind_status (kind=? AND status=?)" in row[-1] for row in plan), plan
    finally:
        store.dispose()
