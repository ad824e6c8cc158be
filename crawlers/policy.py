"""Fetch settings, declared once with their defaults (DESIGN §10, RELIABILITY T10–T14).

Read from the environment by ``FetchPolicy.from_env`` (``LIBRARY_CRAWL_ALLOW_HOSTS``,
``LIBRARY_CRAWL_CONTACT_URL``, ``LIBRARY_CRAWL_DELAY``); tests build a policy directly with small limits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from crawlers.netguard import AllowList

MIB = 1024 * 1024

BOT_NAME = "SocialLibraryBot"
BOT_VERSION = "0.1"
DEFAULT_CONTACT_URL = "https://example.invalid/bot"
CRAWL_DELAY_ENV = "LIBRARY_CRAWL_DELAY"

# Decoded-body caps by media type (RELIABILITY T13, proposed values).
DEFAULT_SIZE_CAPS: Mapping[str, int] = MappingProxyType({
    "text/html": 5 * MIB,
    "application/xhtml+xml": 5 * MIB,
    "text/csv": 20 * MIB,
    "application/rss+xml": 20 * MIB,
    "application/atom+xml": 20 * MIB,
    "application/xml": 20 * MIB,
    "text/xml": 20 * MIB,
    "application/pdf": 20 * MIB,
})


@dataclass(frozen=True)
class FetchPolicy:
    # Addresses and ports.
    allow: AllowList = field(default_factory=AllowList)  # LIBRARY_CRAWL_ALLOW_HOSTS
    allowed_ports: frozenset[int] = frozenset({80, 443, 8080, 8443})
    # Time: connect and per-read timeouts, and a wall-clock budget for one fetch (all its attempts, redirect
    # hops and retry waits: a Retry-After beyond what is left fails the fetch).
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0
    # Size.
    size_caps: Mapping[str, int] = field(default_factory=lambda: DEFAULT_SIZE_CAPS)
    default_size_cap: int = 5 * MIB  # media types not in size_caps
    max_header_count: int = 100
    max_header_bytes: int = 64 * 1024
    max_redirects: int = 5
    # Retries on 429/503: at most max_tries attempts; a longer Retry-After than retry_max_wait gives up.
    max_tries: int = 3
    retry_max_wait: float = 60.0
    retry_backoff: float = 1.0  # first wait without Retry-After; doubles on each retry
    # Politeness.
    delay: float = 1.0  # between requests to one host; robots.txt Crawl-delay wins if larger
    contact_url: str = DEFAULT_CONTACT_URL  # LIBRARY_CRAWL_CONTACT_URL
    robots_ttl: float = 24 * 3600.0
    robots_error_ttl: float = 15 * 60.0  # how long an unreachable robots.txt blocks a host before a retry
    robots_max_bytes: int = 500 * 1024  # RFC 9309 §2.5: parse at least 500 KiB

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> FetchPolicy:
        """The policy the environment asks for; ``overrides`` win. Raises ValueError (Japanese) on a bad value.

        ``LIBRARY_CRAWL_DELAY`` is the seconds between two requests to one host (scrapy's DOWNLOAD_DELAY);
        unset, the polite default above. Only a crawl of one's own local server (tests, benchmarks) should
        set it to 0.
        """
        env = os.environ if environ is None else environ
        settings: dict[str, object] = {"allow": AllowList.parse(env.get("LIBRARY_CRAWL_ALLOW_HOSTS", ""))}
        if contact := env.get("LIBRARY_CRAWL_CONTACT_URL", "").strip():
            settings["contact_url"] = contact
        if raw_delay := env.get(CRAWL_DELAY_ENV, "").strip():
            settings["delay"] = _seconds(CRAWL_DELAY_ENV, raw_delay)
        return cls(**(settings | overrides))

    @property
    def user_agent(self) -> str:
        return f"{BOT_NAME}/{BOT_VERSION} (+{self.contact_url})"

    def size_cap(self, content_type: str | None) -> int:
        media_type = (content_type or "").split(";", 1)[0].strip().lower()
        return self.size_caps.get(media_type, self.default_size_cap)


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):  # also refuses nan
        raise ValueError(f"{name}={raw!r}: 0 以上の秒数を指定してください")
    return value
