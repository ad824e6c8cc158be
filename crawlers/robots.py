"""robots.txt by RFC 9309, parsed by Protego, fetched through the SafeFetcher (RELIABILITY T14).

Decisions:

* One parser per (scheme, host, port), kept for ``robots_ttl`` (24 h; RFC 9309 §2.4 says not longer),
  fetched once however many threads ask for it at the same time.
* 4xx ("unavailable", §2.3.1.3) allows everything, 401 and 403 included; the stdlib's robotparser
  disallows on 401/403, we follow the RFC. 429 is treated like 5xx: the server asks us to back off.
* 5xx, timeouts, refused connections, refused addresses and more redirects than the fetcher follows
  ("unreachable", §2.3.1.4) disallow everything; the verdict is kept for ``robots_error_ttl``, then retried.
* Only the first ``robots_max_bytes`` (500 KiB, §2.5) are parsed, cut back to the last complete line.
* User-agent matching is case-insensitive on our product token (Protego).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protego import Protego

from crawlers.errors import FetchError, ForbiddenAddress, HTTPStatusError, RobotsDisallowed, RobotsUnavailable
from crawlers.netguard import DEFAULT_PORTS, CheckedURL
from crawlers.policy import BOT_NAME, FetchPolicy

if TYPE_CHECKING:
    from crawlers.fetch import FetchResult


@dataclass(frozen=True)
class _Rules:
    parser: Protego | None  # None: every path allowed
    unavailable: str | None  # set: robots.txt unreachable, nothing may be fetched
    expires: float


def robots_url(url: CheckedURL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = "" if url.port == DEFAULT_PORTS[url.scheme] else f":{url.port}"
    return f"{url.scheme}://{host}{port}/robots.txt"


class RobotsCache:
    """Answers "may we fetch this URL?" and "how long between requests?" for one fetcher.

    ``fetch`` is the SafeFetcher's own fetch, so robots.txt requests obey every address, size and time
    rule; it is called with ``respect_robots=False``.
    """

    def __init__(self, fetch: Callable[..., FetchResult], policy: FetchPolicy, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: dict[tuple[str, str, int], _Rules] = {}
        self._loading: dict[tuple[str, str, int], threading.Lock] = {}  # one robots.txt fetch per origin at a time

    def check(self, url: CheckedURL) -> None:
        """Raise RobotsUnavailable or RobotsDisallowed unless ``url`` may be fetched."""
        rules = self._rules_for(url)
        if rules.unavailable is not None:
            raise RobotsUnavailable(rules.unavailable, url=url.url)
        if rules.parser is not None and not rules.parser.can_fetch(url.url, BOT_NAME):
            raise RobotsDisallowed(url.url)

    def crawl_delay(self, url: CheckedURL) -> float | None:
        parser = self._rules_for(url).parser
        return None if parser is None else parser.crawl_delay(BOT_NAME)

    def _rules_for(self, url: CheckedURL) -> _Rules:
        rules = self._fresh(url.origin)
        if rules is not None:
            return rules
        with self._lock:
            loading = self._loading.setdefault(url.origin, threading.Lock())
        with loading:
            rules = self._fresh(url.origin)  # another thread may have loaded it while this one waited
            if rules is None:
                rules = self._load(robots_url(url))
                with self._lock:
                    self._rules[url.origin] = rules
        return rules

    def _fresh(self, origin: tuple[str, str, int]) -> _Rules | None:
        with self._lock:
            rules = self._rules.get(origin)
        return rules if rules is not None and rules.expires > self._clock() else None

    def _load(self, url: str) -> _Rules:
        try:
            result = self._fetch(url, respect_robots=False, max_bytes=self._policy.robots_max_bytes,
                                 truncate=True)
        except HTTPStatusError as exc:
            if 400 <= exc.status < 500 and exc.status != 429:
                return self._allow_all()
            return self._unreachable(f"HTTP {exc.status}")
        except ForbiddenAddress as exc:
            if exc.url != url:  # refused after a redirect: robots.txt is unreachable
                return self._unreachable(str(exc))
            exc.url = None  # the site itself is refused: the caller reports it against its own URL
            raise
        except FetchError as exc:
            return self._unreachable(str(exc))
        return _Rules(Protego.parse(_text(result.content, result.truncated)), None,
                      self._clock() + self._policy.robots_ttl)

    def _allow_all(self) -> _Rules:
        return _Rules(None, None, self._clock() + self._policy.robots_ttl)

    def _unreachable(self, reason: str) -> _Rules:
        return _Rules(None, reason, self._clock() + self._policy.robots_error_ttl)


def _text(content: bytes, truncated: bool) -> str:
    if truncated:
        # A cut line could turn "Allow: /a/b" into the broader "Allow: /a": drop it.
        content = content[: content.rfind(b"\n") + 1]
    return content.decode("utf-8", errors="replace").removeprefix("\ufeff")
