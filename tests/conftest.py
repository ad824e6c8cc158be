"""Shared fixtures: a throwaway data directory and both SQL backends (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("LIBRARY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not (shown as the skip reason)."""
    try:
        import psycopg

        plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, connect_timeout=3):
            return None
    except Exception as exc:  # the reason is reported, not swallowed
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}"


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    monkeypatch.setenv("LIBRARY_DATA_DIR", str(directory))
    monkeypatch.delenv("LIBRARY_DATABASE_URL", raising=False)
    return directory


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """A URL whose connections use a fresh schema, dropped afterwards, so runs never see each other's rows."""
    reason = _postgres_reachable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI promises PostgreSQL: a silent skip would hide a broken store
        pytest.skip(reason)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """Each store test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{data_dir / 'library.db'}"
    return request.getfixturevalue("postgres_url")
