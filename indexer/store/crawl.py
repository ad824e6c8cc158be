"""Tables of the crawl side (issue 4): sources, their runs with a resumable frontier, conditional-GET state.

A run's frontier is a table rather than a JSON column on the run: each page's outcome, the links it adds and
the run's counters are written in the same transaction as the page's record, so a worker killed at any
moment leaves a checkpoint that matches the records exactly (T26), and no page rewrites the whole frontier.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import JSON_DOCUMENT, Base, UTCDateTime, utcnow


class SourceKind(StrEnum):
    WEB = "web"
    FEED = "feed"
    OPENDATA = "opendata"
    UPLOAD = "upload"


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class UnitState(StrEnum):
    """What became of one frontier entry (a page, a feed, a CSV file)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # robots.txt disallows it, or it is not a document we read


class SourceRow(Base):
    """Where records come from. ``location`` is a URL, or a file path for opendata and upload sources.

    ``options`` holds the kind's settings: start_urls, include and exclude patterns, depth and max_pages
    for web; dataset for opendata. ``schedule`` is an interval in seconds or a five-field cron line.
    """

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON_DOCUMENT, default=dict)
    provenance: Mapped[str] = mapped_column(String(16))
    organization: Mapped[str | None] = mapped_column(String(500))
    schedule: Mapped[str | None] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CrawlRunRow(Base):
    """One crawl of a source: when, by which worker, what it did, and the first errors it met.

    ``owner`` ("host/pid/token") and ``heartbeat_at`` form a lease: every write of the run checks that it
    still owns the run, so a worker that lost it (declared dead, then woke up) cannot write over its
    successor. ``resumed_from_id`` links a run to the interrupted one whose frontier it took over.
    """

    __tablename__ = "crawl_runs"
    __table_args__ = (Index("ix_crawl_runs_source_id_id", "source_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    status: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(300))
    resumed_from_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fetched: Mapped[int] = mapped_column(default=0)
    new: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    # The first errors only (the pipeline bounds the list); `failed` counts them all.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON_DOCUMENT, default=list)


class CrawlFrontierRow(Base):
    """One unit of a run's work, in breadth-first order (``id``). Deleted when the run ends normally.

    ``attempts`` counts workers lost while this unit was in flight; the pipeline gives up on a unit after a
    few, so a page that crashes every worker cannot loop forever (T26).
    """

    __tablename__ = "crawl_frontier"
    __table_args__ = (
        UniqueConstraint("run_id", "url_key"),
        Index("ix_crawl_frontier_run_id_state_id", "run_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("crawl_runs.id"))
    url_key: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=UnitState.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)


class FetchStateRow(Base):
    """What the last successful fetch of a URL for a source left behind, for the next run.

    The validators make the next GET conditional; ``links`` lets a 304 still extend the frontier;
    ``content_key`` (sha256 of the extracted text) finds the same page under a second URL or encoding.
    ``encoding`` and ``encoding_source`` say how the document was decoded (the codec, and what chose it: the
    HTTP header, a BOM, a <meta>/XML declaration, detection or the fallback), for an operator reading a
    mis-decoded page (RELIABILITY T15).
    Keyed per source: another source's validators must not turn a first fetch into a 304.
    """

    __tablename__ = "fetch_state"
    __table_args__ = (Index("ix_fetch_state_source_id_content_key", "source_id", "content_key"),)

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    url_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    content_key: Mapped[str | None] = mapped_column(String(64))
    record_id: Mapped[str | None] = mapped_column(String(128))
    links: Mapped[list[str] | None] = mapped_column(JSON_DOCUMENT)
    encoding: Mapped[str | None] = mapped_column(String(32))
    encoding_source: Mapped[str | None] = mapped_column(String(16))
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
