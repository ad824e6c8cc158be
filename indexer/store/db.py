"""The system of record's one SQLAlchemy engine: sessions, migrations and the durability self-check (T27)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from indexer.config import Settings
from indexer.store.pool_waits import PoolWaitReport, TimedQueuePool

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# PostgreSQL advisory lock key: start-ups that race (web, worker, beat) migrate one at a time.
_MIGRATION_LOCK_KEY = zlib.crc32(b"indexer.store.migrate")

# Execution option read by the SQLite "begin" hook: how to open the transaction.
_SQLITE_BEGIN = "library_sqlite_begin"

_SQLITE_BUSY_TIMEOUT_MS = 10_000
_SQLITE_MIN_BUSY_TIMEOUT_MS = 5_000
_SQLITE_SYNCHRONOUS_FULL = 2

DBAPIConnection = Any


class UnsafeStorageSettings(RuntimeError):
    """With these database settings a crash could lose acknowledged writes; the service refuses to run."""


class UnsupportedDatabase(ValueError):
    """The URL names a database other than SQLite or PostgreSQL."""


def _sqlite_connect(dbapi_connection: DBAPIConnection, _record: object) -> None:
    # Take transaction control away from pysqlite (SQLAlchemy's documented recipe), so that _sqlite_begin
    # decides how each transaction starts; pysqlite's own implicit BEGIN is DEFERRED.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching a fresh file to WAL needs a lock that another connection may hold.
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, where busy_timeout applies, so concurrent writers queue. A
    # DEFERRED transaction that reads, then writes, fails at once with "database is locked" if another writer
    # got there first: SQLite cannot wait on a lock upgrade without risking deadlock.
    mode = connection.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _json_dumps(value: Any) -> str:
    # Japanese text stored as itself, not as \uXXXX escapes: a third of the bytes for every record and revision.
    return json.dumps(value, ensure_ascii=False)


class Store:
    """The SQL system of record: one Engine, its sessions, migrations and checks.

    `after_connect` runs after the store's own per-connection setup. It exists for tests, which weaken a
    setting with it to prove that `self_check` refuses to run.
    """

    def __init__(
        self, url: str | URL, *, after_connect: Callable[[DBAPIConnection], None] | None = None
    ) -> None:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # A file database gets SQLAlchemy's default QueuePool (5 + 10 overflow), timed; :memory: keeps its
            # one-connection-per-thread pool, which never waits.
            file_pool: dict[str, Any] = (
                {"poolclass": TimedQueuePool} if parsed.database and parsed.database != ":memory:" else {}
            )
            self.engine: Engine = create_engine(parsed, json_serializer=_json_dumps, **file_pool)
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
            reader_options: dict[str, Any] = {_SQLITE_BEGIN: "DEFERRED"}
        elif backend == "postgresql":
            self.engine = create_engine(
                parsed,
                isolation_level="READ COMMITTED",
                poolclass=TimedQueuePool,
                pool_pre_ping=True,  # a restarted server must not hand out dead connections
                pool_size=10,
                max_overflow=10,
                pool_timeout=10,
                json_serializer=_json_dumps,
            )
            reader_options = {"postgresql_readonly": True}
        else:
            raise UnsupportedDatabase(f"unsupported database {backend!r}: use sqlite or postgresql+psycopg")
        if after_connect is not None:
            event.listen(self.engine, "connect", lambda dbapi_connection, _: after_connect(dbapi_connection))
        # A view of the same engine (same pool and hooks) whose transactions only read.
        self._reader = self.engine.execution_options(**reader_options)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self._reader, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.database_url)

    @classmethod
    def open(
        cls,
        url: str | URL,
        *,
        migrate: bool = False,
        after_connect: Callable[[DBAPIConnection], None] | None = None,
    ) -> Store:
        """A store ready for use: migrated to head when asked, refused when it is not durable (T27)."""
        store = cls(url, after_connect=after_connect)
        try:
            if migrate:
                store.migrate()
            store.self_check()
        except BaseException:
            store.dispose()
            raise
        return store

    @property
    def dialect(self) -> str:
        """The backend: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises.

        Write sessions start with BEGIN IMMEDIATE on SQLite. Read-only ones start a plain BEGIN there (in WAL
        mode readers never wait for writers) and are READ ONLY transactions on PostgreSQL; on SQLite,
        read-only is a promise the caller keeps, not an enforced mode.
        """
        factory = self._read_sessions if readonly else self._sessions
        with factory.begin() as session:
            yield session

    def migrate(self) -> None:
        """Alembic `upgrade head`, in one transaction, on this store's engine."""
        config = Config()
        # Config values are interpolated, so a literal % in the install path must be doubled.
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self.engine.begin() as connection:
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def self_check(self) -> None:
        """Raise UnsafeStorageSettings naming every setting that could lose a committed write (T27)."""
        with self._reader.connect() as connection:
            if self.dialect == "sqlite":
                problems = _sqlite_problems(connection)
            else:
                problems = _postgres_problems(connection)
        if problems:
            raise UnsafeStorageSettings(
                "データベースの設定が安全ではないため起動しません: " + "; ".join(problems)
            )

    def integrity_check(self) -> str:
        """ "ok", or what is wrong: SQLite's PRAGMA integrity_check; on PostgreSQL, that it answers at all."""
        with self._reader.connect() as connection:
            if self.dialect == "sqlite":
                rows = connection.exec_driver_sql("PRAGMA integrity_check").scalars().all()
                return "\n".join(str(row) for row in rows)
            return "ok" if connection.execute(text("SELECT 1")).scalar() == 1 else "no answer to SELECT 1"

    def pool_waits(self) -> PoolWaitReport | None:
        """How long this process's checkouts waited for a connection (T29), or None for an untimed pool."""
        pool = self.engine.pool
        return pool.wait_report() if isinstance(pool, TimedQueuePool) else None

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_problems(connection: Connection) -> list[str]:
    def pragma(name: str) -> Any:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

    problems = []
    journal_mode = str(pragma("journal_mode")).lower()
    if journal_mode != "wal":
        problems.append(f"SQLite PRAGMA journal_mode={journal_mode}（wal が必要）")
    synchronous = pragma("synchronous")
    if synchronous < _SQLITE_SYNCHRONOUS_FULL:
        problems.append(f"SQLite PRAGMA synchronous={synchronous}（FULL = 2 以上が必要）")
    foreign_keys = pragma("foreign_keys")
    if foreign_keys != 1:
        problems.append(f"SQLite PRAGMA foreign_keys={foreign_keys}（ON = 1 が必要）")
    busy_timeout = pragma("busy_timeout")
    if busy_timeout < _SQLITE_MIN_BUSY_TIMEOUT_MS:
        problems.append(
            f"SQLite PRAGMA busy_timeout={busy_timeout}（{_SQLITE_MIN_BUSY_TIMEOUT_MS} ms 以上が必要）"
        )
    return problems


# PostgreSQL setting → the values that keep a committed transaction through a crash (A3).
_POSTGRES_REQUIRED: dict[str, tuple[str, ...]] = {
    "fsync": ("on",),
    "full_page_writes": ("on",),
    # "on" retries a failed fsync, but the kernel may already have dropped the dirty pages: PANIC and recover.
    "data_sync_retry": ("off",),
    "synchronous_commit": ("on", "local", "remote_write", "remote_apply"),
}


def _postgres_problems(connection: Connection) -> list[str]:
    # pg_settings shows this session's values, so a session-level SET synchronous_commit=off is caught too.
    rows = connection.execute(
        text("SELECT name, setting FROM pg_settings WHERE name = ANY(:names)"),
        {"names": list(_POSTGRES_REQUIRED)},
    )
    actual = {name: setting for name, setting in rows}
    problems = []
    for name, allowed in _POSTGRES_REQUIRED.items():
        value = actual.get(name)
        if value not in allowed:
            shown = "(なし)" if value is None else value
            problems.append(f"PostgreSQL {name}={shown}（{' / '.join(allowed)} が必要）")
    return problems
