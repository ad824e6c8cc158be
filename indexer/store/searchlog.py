"""The search log (issue 3): what was asked and how it went, for the zero-result report.

A row holds the query text, its filters, the hit count and the latency, and nothing that identifies who asked:
no IP address, no user or session id, no user agent. There is deliberately no column that could hold one (T08).
The query text can still hold a name someone typed, so rows are kept for a limited time: `purge_search_log`
deletes those older than `LIBRARY_SEARCH_LOG_RETENTION_DAYS` (90 days by default); beat runs it daily and
`library searchlog purge` on demand.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, Index, Text, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from indexer.config import ConfigError

from .models import JSON_DOCUMENT, Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from .db import Store

RETENTION_ENV = "LIBRARY_SEARCH_LOG_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 90
# Rows deleted per transaction: a purge never holds SQLite's write lock for long, so searches keep logging.
PURGE_BATCH = 5000


class SearchLogRow(Base):
    __tablename__ = "search_log"
    # The zero-result report reads `total = 0` rows of a recent period.
    __table_args__ = (Index("ix_search_log_total_at", "total", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    query: Mapped[str] = mapped_column(Text)
    filters: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, default=dict)
    total: Mapped[int]
    took_ms: Mapped[float] = mapped_column(Float)
    relaxed: Mapped[bool]


def write_search_log(store: Store, rows: list[dict[str, Any]]) -> None:
    """Insert rows (dicts of the columns but `id`) in one transaction, as one executemany: no ORM objects."""
    if rows:
        with store.session() as session:
            session.execute(insert(SearchLogRow), rows)


def retention_days(environ: dict[str, str] | None = None) -> int:
    """Days a search log row is kept: `LIBRARY_SEARCH_LOG_RETENTION_DAYS`, default 90; a positive whole number."""
    raw = (os.environ if environ is None else environ).get(RETENTION_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise ConfigError(f"{RETENTION_ENV}={raw!r} は使えません（1 以上の日数を指定してください）")
    return days


def purge_search_log(
    store: Store, days: int | None = None, now: datetime | None = None, max_batches: int | None = None
) -> int:
    """Delete search log rows older than `days` (default: `retention_days()`); returns how many.

    Rows are appended in time order (give or take a buffer's few seconds), so the oldest have the lowest ids:
    each batch reads the first PURGE_BATCH rows by primary key and deletes the old ones, and the purge stops at
    the first row that is not old. Each batch is its own short transaction, and no index on `at` is needed.
    """
    days = retention_days() if days is None else days
    if days < 1:
        raise ValueError(f"days must be positive, not {days}")
    cutoff = (now or utcnow()) - timedelta(days=days)
    head = select(SearchLogRow.id, SearchLogRow.at).order_by(SearchLogRow.id).limit(PURGE_BATCH)
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        with store.session() as session:
            rows = session.execute(head).all()
            old = [row_id for row_id, at in rows if at < cutoff]
            if old:
                session.execute(delete(SearchLogRow).where(SearchLogRow.id.in_(old)))
        deleted += len(old)
        if len(old) < PURGE_BATCH:
            break
    return deleted
