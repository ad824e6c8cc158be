"""URLs found in crawled documents: resolved, restricted to http(s) and put in the indexer's canonical form.

Every URL returned here passes the record schema's URL rules, so a draft built from it validates.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, urljoin, urlsplit

from indexer.ingest import canonical_url

MAX_URL_LENGTH = 2048  # the record schema's limit
MAX_HOST_LENGTH = 253  # DNS; a page's site (the host) must also fit the schema's 500 characters
# WHATWG URL parsing strips C0 controls and spaces at both ends and removes tab and newlines anywhere.
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
_REMOVED_INSIDE = str.maketrans("", "", "\t\n\r")


def absolute_http_url(href: str | None, base: str | None = None) -> str | None:
    """``href`` resolved against ``base`` in canonical form (fragment dropped), or None unless http(s).

    None also for what a record could not hold: no host, a host with whitespace or longer than DNS allows, a
    bad port, an IPv6 literal (``canonical_url`` drops its brackets), over 2,048 characters.
    """
    if not href:
        return None
    href = href.strip(_C0_AND_SPACE).translate(_REMOVED_INSIDE)
    if not href:
        return None  # an empty href points at the document itself
    try:
        joined = urljoin(base, href) if base else href
        parts = urlsplit(joined)
        _ = parts.port  # raises ValueError for a malformed or out-of-range port
    except ValueError:
        return None
    host = parts.hostname or ""
    is_http = parts.scheme.lower() in ("http", "https")
    if not is_http or not host or ":" in host or len(host) > MAX_HOST_LENGTH or any(map(_unsafe, host)):
        return None
    # Browsers percent-encode the spaces (and other whitespace) left in a path or query; the schema refuses
    # them raw. (In a host they make no name at all.)
    url = canonical_url("".join(quote(char) if _unsafe(char) else char for char in joined))
    return url if url is not None and len(url) <= MAX_URL_LENGTH else None


def site_of(url: str) -> str:
    """The host of an absolute URL, lowercased."""
    return (urlsplit(url).hostname or "").lower()


def same_site(url: str, other: str) -> bool:
    """True when both URLs are on one host, ignoring a leading ``www.`` and the scheme.

    Deliberately narrower than "same registrable domain": without a public-suffix list (not a dependency),
    example.co.jp and other.co.jp, or pref.shizuoka.lg.jp and city.shizuoka.lg.jp, could not be told apart,
    and a page could then claim another organisation's URL as its canonical.
    """
    return _without_www(site_of(url)) == _without_www(site_of(other)) != ""


def _without_www(host: str) -> str:
    return host.removeprefix("www.")


def _unsafe(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) == "Cc"
