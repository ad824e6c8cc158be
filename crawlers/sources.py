"""Sources: what the library crawls, kept in SQL and managed from the CLI and the admin page (issue 4).

A source is checked once, when it is added, so that a crawl never meets a pattern that does not compile or a
schedule that does not parse. ``WebScope`` is the one place that decides which links a web crawl follows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, get_args
from urllib.parse import urlsplit

from celery.schedules import crontab
from celery.schedules import schedule as interval
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crawlers.parse.urls import absolute_http_url
from indexer.store import CrawlRunRow, SourceKind, SourceRow, Store
from indexer.store.models import utcnow
from schemas import Provenance

DEFAULT_DEPTH = 3
DEFAULT_MAX_PAGES = 500
# Sources may be scheduled no more often than this: small municipal servers are the usual target.
MIN_INTERVAL_SECONDS = 300
CRON_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 3 * * *", "@weekly": "0 3 * * 0"}
# Links to these are never queued: the web pipeline reads HTML only (scrapy's IGNORED_EXTENSIONS, abridged).
IGNORED_EXTENSIONS = frozenset({
    "7z", "avi", "bmp", "css", "csv", "doc", "docx", "exe", "gif", "gz", "ico", "jpeg", "jpg", "js", "json",
    "m4a", "mov", "mp3", "mp4", "mpeg", "ogg", "pdf", "png", "ppt", "pptx", "rar", "svg", "tar", "tif", "tiff",
    "txt", "wav", "webm", "webp", "wmv", "xls", "xlsx", "xml", "zip",
})
PROVENANCES: tuple[str, ...] = get_args(Provenance)


class SourceError(ValueError):
    """A source definition that cannot be crawled. The message is Japanese and meant for the operator."""


@dataclass(frozen=True)
class SourceOverview:
    """A source with its latest run, for `library sources list` and the admin page."""

    source: SourceRow
    last_run: CrawlRunRow | None


def parse_schedule(text: str) -> interval | crontab:
    """An interval in seconds ("3600"), a five-field cron line ("0 6 * * 1-5", Asia/Tokyo) or @hourly,
    @daily, @weekly, as the Celery schedule beat runs."""
    spec = CRON_ALIASES.get(text.strip(), text.strip())
    if spec.isdigit():
        seconds = int(spec)
        if seconds < MIN_INTERVAL_SECONDS:
            raise SourceError(f"実行間隔は {MIN_INTERVAL_SECONDS} 秒以上にしてください: {text}")
        return interval(timedelta(seconds=seconds))
    fields = spec.split()
    if len(fields) != 5:
        raise SourceError(f"スケジュールは秒数か cron 形式（分 時 日 月 曜日）で指定してください: {text}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                       day_of_week=day_of_week)
    except ValueError as exc:
        raise SourceError(f"cron 形式のスケジュールが読めません: {text}（{exc}）") from None


def _http_url(value: str) -> str:
    url = absolute_http_url(value)
    if url is None:
        raise SourceError(f"http または https の URL を指定してください: {value}")
    return url


def _patterns(values: Iterable[str], option: str) -> list[str]:
    patterns = [value for value in values if value]
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SourceError(f"--{option} の正規表現が読めません: {pattern}（{exc}）") from None
    return patterns


def _location(kind: SourceKind, locations: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The stored location and any options it implies (a web source's extra start URLs)."""
    if not locations:
        raise SourceError("URL またはファイルを指定してください")
    if kind is SourceKind.WEB:
        urls = list(dict.fromkeys(_http_url(value) for value in locations))
        return urls[0], ({"start_urls": urls} if len(urls) > 1 else {})
    if len(locations) > 1:
        raise SourceError(f"{kind} のソースに指定できる URL またはファイルは 1 つです")
    value = locations[0]
    if kind is SourceKind.FEED or (kind is SourceKind.OPENDATA and "://" in value):
        return _http_url(value), {}
    path = Path(value).expanduser()
    if not path.is_file():
        raise SourceError(f"ファイルが見つかりません: {value}")
    return str(path.resolve()), {}


def add_source(
    store: Store,
    kind: str,
    locations: Sequence[str],
    *,
    provenance: str,
    name: str | None = None,
    organization: str | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    depth: int | None = None,
    max_pages: int | None = None,
    schedule: str | None = None,
    dataset: str | None = None,
) -> SourceRow:
    """Check a source definition and store it; raises SourceError naming what is wrong."""
    try:
        source_kind = SourceKind(kind)
    except ValueError:
        raise SourceError(f"種類は {', '.join(SourceKind)} のいずれかです: {kind}") from None
    if provenance not in PROVENANCES:
        raise SourceError(f"provenance は {', '.join(PROVENANCES)} のいずれかです: {provenance}")
    location, options = _location(source_kind, locations)
    include, exclude = list(include), list(exclude)
    if source_kind is SourceKind.WEB:
        options |= {
            "include": _patterns(include, "include"),
            "exclude": _patterns(exclude, "exclude"),
            "depth": DEFAULT_DEPTH if depth is None else depth,
            "max_pages": DEFAULT_MAX_PAGES if max_pages is None else max_pages,
        }
        if options["depth"] < 0 or options["max_pages"] < 1:
            raise SourceError("--depth は 0 以上、--max-pages は 1 以上にしてください")
    elif include or exclude or depth is not None or max_pages is not None:
        raise SourceError("--include、--exclude、--depth、--max-pages は web のソースにだけ指定できます")
    if dataset:
        if source_kind is not SourceKind.OPENDATA:
            raise SourceError("--dataset は opendata のソースにだけ指定できます")
        options["dataset"] = dataset
    if schedule:
        parse_schedule(schedule)
    now = utcnow()
    row = SourceRow(
        kind=source_kind.value,
        name=(name or location)[:200],
        location=location,
        options=options,
        provenance=provenance,
        organization=organization or None,
        schedule=schedule or None,
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    with store.session() as session:
        session.add(row)
    return row


def list_sources(store: Store) -> list[SourceOverview]:
    with store.session(readonly=True) as session:
        sources = session.scalars(select(SourceRow).order_by(SourceRow.id)).all()
        latest = select(func.max(CrawlRunRow.id)).group_by(CrawlRunRow.source_id)
        runs = {run.source_id: run for run in session.scalars(select(CrawlRunRow).where(CrawlRunRow.id.in_(latest)))}
    return [SourceOverview(source, runs.get(source.id)) for source in sources]


def last_run_starts(session: Session) -> dict[int, datetime]:
    """When each source's latest run started: where beat's schedule for the source resumes counting."""
    rows = session.execute(select(CrawlRunRow.source_id, func.max(CrawlRunRow.started_at)).group_by(
        CrawlRunRow.source_id))
    return dict(rows.all())


def _site(url: str) -> str:
    """Host and non-default port of a canonical URL, without a leading www. (as crawlers.parse.urls)."""
    return urlsplit(url).netloc.removeprefix("www.")


@dataclass(frozen=True)
class WebScope:
    """Which URLs a web source's crawl follows: its start URLs' sites, include/exclude patterns, depth."""

    start_urls: tuple[str, ...]
    sites: frozenset[str]
    include: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]
    depth: int
    max_pages: int

    @classmethod
    def of(cls, source: SourceRow) -> WebScope:
        options = source.options
        start_urls = tuple(options.get("start_urls") or [source.location])
        return cls(
            start_urls=start_urls,
            sites=frozenset(_site(url) for url in start_urls),
            include=tuple(re.compile(pattern) for pattern in options.get("include", [])),
            exclude=tuple(re.compile(pattern) for pattern in options.get("exclude", [])),
            depth=options.get("depth", DEFAULT_DEPTH),
            max_pages=options.get("max_pages", DEFAULT_MAX_PAGES),
        )

    def on_site(self, url: str) -> bool:
        return _site(url) in self.sites

    def follows(self, url: str, depth: int) -> bool:
        """Would a link to canonical ``url`` found at ``depth - 1`` be crawled?"""
        if depth > self.depth or not self.on_site(url):
            return False
        if PurePosixPath(urlsplit(url).path).suffix.lower().lstrip(".") in IGNORED_EXTENSIONS:
            return False
        if self.include and not any(pattern.search(url) for pattern in self.include):
            return False
        return not any(pattern.search(url) for pattern in self.exclude)
