"""Fetch failures: one exception tree, each error naming the rule that fired.

Rule names are stable: they appear in logs (``extra={"rule": ...}``), in error messages and on the
source's crawl status, so dashboards and tests can match on them.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Rule(StrEnum):
    # Address ranges (netguard).
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link-local"
    METADATA = "metadata"
    CGNAT = "cgnat"
    UNIQUE_LOCAL = "unique-local"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"
    IETF_PROTOCOL = "ietf-protocol"
    DOCUMENTATION = "documentation"
    TEREDO = "teredo"
    NON_GLOBAL = "non-global"
    # URL shape (netguard).
    SCHEME = "scheme"
    USERINFO = "userinfo"
    PORT = "port"
    INVALID_HOST = "invalid-host"
    INVALID_URL = "invalid-url"
    # Transfer (fetch).
    DNS = "dns"
    CONNECT = "connect-failed"
    TLS = "tls"
    PROTOCOL = "protocol-error"
    CONTENT_ENCODING = "content-encoding"
    CONNECT_TIMEOUT = "connect-timeout"
    READ_TIMEOUT = "read-timeout"
    TOTAL_TIMEOUT = "total-timeout"
    MAX_REDIRECTS = "max-redirects"
    REDIRECT_LOOP = "redirect-loop"
    CONTENT_LENGTH = "content-length"
    BODY_SIZE = "body-size"
    HEADER_COUNT = "header-count"
    HEADER_SIZE = "header-size"
    HTTP_STATUS = "http-status"
    # robots.txt.
    ROBOTS_DISALLOWED = "robots-disallowed"
    ROBOTS_UNAVAILABLE = "robots-unavailable"


class FetchError(Exception):
    """Base of every fetch failure. ``url`` is filled in by the fetcher when the error leaves it."""

    def __init__(self, message: str, *, rule: Rule, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.url = url

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


class ForbiddenAddress(FetchError):
    """The destination address (literal or resolved) is in a range crawlers must never reach."""

    def __init__(self, rule: Rule, address: IPAddress | str, detail: str = "", *, url: str | None = None):
        self.address = address
        super().__init__(f"{address} is refused ({rule}){detail}", rule=rule, url=url)


class ForbiddenURL(FetchError):
    """The URL itself is refused before any network activity (userinfo, port, unparsable host)."""


class ForbiddenScheme(ForbiddenURL):
    def __init__(self, scheme: str, *, url: str | None = None) -> None:
        self.scheme = scheme
        super().__init__(f"scheme {scheme!r} is not http or https", rule=Rule.SCHEME, url=url)


class NetworkError(FetchError):
    """DNS, connection, TLS or HTTP protocol failure."""


class FetchTimeout(FetchError):
    pass


class TooManyRedirects(FetchError):
    pass


class TooLarge(FetchError):
    """A size cap was hit. ``received`` is how many (decoded) bytes had been read when we stopped."""

    def __init__(self, message: str, *, rule: Rule, limit: int, received: int, url: str | None = None):
        self.limit = limit
        self.received = received
        super().__init__(message, rule=rule, url=url)


class HTTPStatusError(FetchError):
    def __init__(self, status: int, *, retry_after: str | None = None, url: str | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(f"HTTP status {status}", rule=Rule.HTTP_STATUS, url=url)


class RobotsDisallowed(FetchError):
    def __init__(self, url: str) -> None:
        super().__init__("robots.txt disallows this URL", rule=Rule.ROBOTS_DISALLOWED, url=url)


class RobotsUnavailable(FetchError):
    """robots.txt could not be read (5xx, timeout, refused...): RFC 9309 says assume complete disallow."""

    def __init__(self, reason: str, *, url: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"robots.txt unavailable, nothing crawled: {reason}", rule=Rule.ROBOTS_UNAVAILABLE,
                         url=url)
