"""`library searchlog purge`: the search log retention (T08) on demand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from indexer.cli import main
from indexer.store import SearchLogRow, Store
from indexer.store.models import utcnow
from indexer.store.searchlog import RETENTION_ENV, write_search_log


def log_rows(data_dir: Path, *ages_in_days: int) -> Store:
    store = Store.open(f"sqlite:///{data_dir / 'library.db'}", migrate=True)
    now = utcnow()
    write_search_log(
        store,
        [
            {
                "at": now - timedelta(days=age),
                "query": f"{age}日前",
                "filters": {},
                "total": 0,
                "took_ms": 1.0,
                "relaxed": False,
            }
            for age in ages_in_days
        ],
    )
    return store


def remaining(store: Store) -> list[str]:
    with store.session(readonly=True) as session:
        return list(session.scalars(select(SearchLogRow.query).order_by(SearchLogRow.id)))


def test_purge_keeps_the_retention_period(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = log_rows(data_dir, 120, 95, 40, 3)
    try:
        result = CliRunner().invoke(main, ["searchlog", "purge"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "90 日より古い検索ログを 2 件削除しました" in result.output
        assert remaining(store) == ["40日前", "3日前"]

        monkeypatch.setenv(RETENTION_ENV, "30")
        assert "1 件削除" in CliRunner().invoke(main, ["searchlog", "purge"]).output
        assert "0 件削除" in CliRunner().invoke(main, ["searchlog", "purge", "--days", "7"]).output
        assert "1 件削除" in CliRunner().invoke(main, ["searchlog", "purge", "--days", "2"]).output
        assert remaining(store) == []
    finally:
        store.dispose()


def test_a_bad_retention_setting_is_refused_clearly(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RETENTION_ENV, "0")
    result = CliRunner().invoke(main, ["searchlog", "purge"])
    assert result.exit_code == 1
    assert RETENTION_ENV in result.output and "1 以上" in result.output
    assert (
        CliRunner().invoke(main, ["searchlog", "purge", "--days", "0"]).exit_code == 2
    )  # click's usage error
