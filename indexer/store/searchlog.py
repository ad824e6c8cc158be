"""The search log (issue 3): what was asked and how it went, for the zero-result report.

A row holds the query text, its filters, the hit count and the latency, and nothing that identifies who asked:
no IP address, no user or session id, no user agent. There is deliberately no column that could hold one (T08).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import JSON_DOCUMENT, Base, UTCDateTime, utcnow


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
