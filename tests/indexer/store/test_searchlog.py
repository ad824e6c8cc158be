"""Search log retention (T08): rows older than the retention period are deleted, in short batches, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from indexer.config import ConfigError
from indexer.store import SearchLogRow, Store, searchlog
from indexer.store.searchlog import (
    DEFAULT_RETENTION_DAYS,
    RETENTION_ENV,
    purge_search_log,
    retention_days,
    write_search_log,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def rows_at(*ages_in_days: float) -> list[dict[str, object]]:
    """Log rows in the order searches would write them: oldest first."""
    return [
        {
            "at": NOW - timedelta(days=age),
            "query": f"{age}日前",
            "filters": {},
            "total": 1,
            "took_ms": 1.0,
            "relaxed": False,
        }
        for age in ages_in_days
    ]


def queries(store: Store) -> list[str]:
    with store.session(readonly=True) as session:
        return list(session.scalars(select(SearchLogRow.query).order_by(SearchLogRow.id)))


def test_rows_older_than_the_retention_period_are_deleted(store: Store) -> None:
    write_search_log(store, rows_at(400, 91, 90.01, 89.99, 1, 0))
    assert purge_search_log(store, days=90, now=NOW) == 3
    assert queries(store) == ["89.99日前", "1日前", "0日前"]
    assert purge_search_log(store, days=90, now=NOW) == 0  # run twice, the second run finds nothing
    assert purge_search_log(store, days=1, now=NOW) == 1  # a row exactly as old as the period is kept
    assert queries(store) == ["1日前", "0日前"]


def test_large_backlogs_go_in_batches(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(searchlog, "PURGE_BATCH", 4)
    write_search_log(store, rows_at(*[200 - i for i in range(10)], 3, 2))
    # One batch at a time when asked (the web process's safety net), everything otherwise.
    assert purge_search_log(store, days=90, now=NOW, max_batches=1) == 4
    assert purge_search_log(store, days=90, now=NOW) == 6
    assert queries(store) == ["3日前", "2日前"]


def test_an_empty_log_purges_nothing(store: Store) -> None:
    assert purge_search_log(store, days=90, now=NOW) == 0
    with store.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(SearchLogRow)) == 0


def test_the_retention_period_is_a_setting() -> None:
    assert retention_days({}) == DEFAULT_RETENTION_DAYS == 90
    assert retention_days({RETENTION_ENV: " 30 "}) == 30
    for bad in ("0", "-5", "三十", "1.5"):
        with pytest.raises(ConfigError, match=RETENTION_ENV):
            retention_days({RETENTION_ENV: bad})


def test_the_default_comes_from_the_environment(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    write_search_log(store, rows_at(40, 20))
    monkeypatch.setenv(RETENTION_ENV, "30")
    assert purge_search_log(store, now=NOW) == 1
    assert queries(store) == ["20日前"]
