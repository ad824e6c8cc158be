"""RSS 1.0 (RDF), RSS 2.0 and Atom feeds → entries, via feedparser on text decoded by our charset policy.

A feed that declares a DOCTYPE or an entity is refused before feedparser sees it, as defusedxml's
``forbid_dtd``/``forbid_entities`` would: no external entities (XXE), no entity expansion ("billion
laughs"). Real feeds carry neither.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from time import struct_time

import feedparser

from crawlers.charset import CharsetSource, decode_document
from crawlers.parse.dates import YEARS
from crawlers.parse.errors import ParseError
from crawlers.parse.html import html_to_text
from crawlers.parse.text import BODY_MAX, LINE_MAX, clip, one_line, tidy
from crawlers.parse.urls import absolute_http_url, site_of
from schemas import JST

# feedparser takes about a millisecond an entry: only the first entries of a feed are read (feeds list the
# newest first, and real ones carry 10-100). The rest of the document is cut at the next entry's start.
MAX_ENTRIES = 500
_ENTRY_START = re.compile(r"<(?:[A-Za-z][\w.-]{0,20}:)?(?:item|entry)\b")


@dataclass(frozen=True)
class FeedEntry:
    title: str | None
    link: str | None
    """Absolute http(s) URL in canonical form; None when the entry has none."""
    summary_text: str
    """The summary (or, lacking one, the content) as plain text."""
    published_at: datetime | None
    updated_at: datetime | None
    id: str | None
    """The entry's guid (RSS) or id (Atom)."""


@dataclass(frozen=True)
class Feed:
    title: str | None
    link: str | None
    version: str
    """feedparser's name for the format: rss10, rss20, atom10, …"""
    entries: tuple[FeedEntry, ...]
    encoding: str
    encoding_source: CharsetSource


def parse_feed(content: bytes, *, url: str, content_type: str | None = None) -> Feed:
    decoded = decode_document(content, content_type, "xml")
    _refuse_declarations(decoded.text)
    # feedparser gets UTF-8 bytes and a header saying so, which by RFC 3023 outranks the XML declaration
    # (feedparser rewrites it to match); and a stream: a str would be taken for a URL or a file name.
    try:
        parsed = feedparser.parse(
            io.BytesIO(_within_entry_budget(decoded.text).encode("utf-8")),
            response_headers={"content-type": "application/xml; charset=utf-8", "content-location": url},
        )
    except Exception as exc:  # its fallback parser fails in its own ways on broken feeds (KeyError: 'links')
        raise ParseError(f"フィードを読めません（形式が壊れています）: {type(exc).__name__}") from exc
    if not parsed.get("version") and not parsed.entries:
        raise ParseError("RSS 1.0・RSS 2.0・Atom のフィードとして読めません")
    channel = parsed.feed
    return Feed(
        title=one_line(_text_of(channel, "title")) or None,
        link=absolute_http_url(_string(channel, "link"), url),
        version=parsed.get("version") or "unknown",
        entries=tuple(_entry(entry, url) for entry in parsed.entries),
        encoding=decoded.encoding,
        encoding_source=decoded.source,
    )


def feed_entry_draft(entry: FeedEntry) -> dict:
    """A ``page`` record draft for an entry; ParseError when the entry has no http(s) link to be its URL."""
    if entry.link is None:
        name = entry.title or entry.id or ""
        raise ParseError(f"リンクのないフィード項目はページとして取り込めません: {name}")
    title = entry.title or entry.summary_text.split("\n", 1)[0] or entry.link
    draft = {
        "kind": "page",
        "title": clip(title, LINE_MAX),
        "body": clip(entry.summary_text, BODY_MAX),
        "url": entry.link,
        "site": site_of(entry.link),
    }
    if published := entry.published_at or entry.updated_at:
        draft["published_at"] = published.isoformat()
    if entry.updated_at:
        draft["updated_at"] = entry.updated_at.isoformat()
    if entry.id and len(entry.id) <= LINE_MAX and entry.id.strip():
        draft["external_id"] = entry.id.strip()
    return draft


def _refuse_declarations(text: str) -> None:
    """ParseError if the document has a DOCTYPE or an ENTITY declaration outside comments and CDATA.

    A plain scan with str.find. An unclosed comment or CDATA hides nothing: the rest is still scanned, and
    a closing found missing once is not searched for again (else ``"<![CDATA[" * n`` costs n² steps).
    """
    upper = text.upper()
    missing: set[str] = set()
    position = upper.find("<!")
    while position != -1:
        for opening, closing in (("<!--", "-->"), ("<![CDATA[", "]]>")):
            if upper.startswith(opening, position):
                end = -1 if closing in missing else upper.find(closing, position + len(opening))
                if end == -1:
                    missing.add(closing)
                position = end + len(closing) if end != -1 else position + len(opening)
                break
        else:
            if upper.startswith(("<!DOCTYPE", "<!ENTITY"), position):
                raise ParseError("DOCTYPE や ENTITY 宣言を含むフィードは、安全のため読み込みません")
            position += 2
        position = upper.find("<!", position)


def _within_entry_budget(text: str) -> str:
    for count, match in enumerate(_ENTRY_START.finditer(text)):
        if count == MAX_ENTRIES:
            return text[: match.start()]
    return text


def _entry(entry: feedparser.FeedParserDict, base: str) -> FeedEntry:
    summary = _text_of(entry, "summary")
    if not summary and isinstance(parts := entry.get("content"), list):
        summary = next((text for part in parts if isinstance(part, dict) and (text := _as_text(part))), "")
    return FeedEntry(
        title=one_line(_text_of(entry, "title")) or None,
        link=absolute_http_url(_string(entry, "link"), base),
        summary_text=summary,
        published_at=_timestamp(entry.get("published_parsed")),
        # dict.get: FeedParserDict's own lookup falls back from "updated" to "published" with a warning.
        updated_at=_timestamp(dict.get(entry, "updated_parsed")),
        id=_string(entry, "id") or None,
    )


def _string(item: dict, key: str) -> str:
    """A string value of feedparser's result, or "": on broken feeds a "link" can come back as a dict."""
    value = item.get(key)
    return value if isinstance(value, str) else ""


def _text_of(item: feedparser.FeedParserDict, field: str) -> str:
    detail = item.get(f"{field}_detail")
    return _as_text(detail) if isinstance(detail, dict) else tidy(_string(item, field))


def _as_text(detail: dict) -> str:
    """A text construct as plain text: markup (RSS descriptions, Atom type="html") is rendered, plain text
    is only tidied, so "a < b" stays as written."""
    value = _string(detail, "value")
    return html_to_text(value) if "html" in _string(detail, "type") else tidy(value)


def _timestamp(value: struct_time | None) -> datetime | None:
    """feedparser's parsed dates are UTC; we give them in Japan time."""
    if value is None or value.tm_year not in YEARS:
        return None
    return datetime(*value[:6], tzinfo=UTC).astimezone(JST)
