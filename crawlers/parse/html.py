"""HTML page → title, main text, dates, canonical URL and links (BeautifulSoup with the lxml parser).

The main text is what a reader came for: navigation, page headers and footers, asides, scripts, styles,
forms and hidden elements are left out; ``<main>`` (or ``role=main``) is preferred, then a lone
``<article>``, else the block that holds the most paragraph text (a small form of Readability's scoring).
Block elements become line breaks. The text is kept as written (no NFKC): search normalises, not us.

Every walk over the tree is iterative, so ``'<div>' * 100000`` cannot raise ``RecursionError``, and the
parser sees at most ``MAX_TAGS`` tags, which bounds the time one document can take (RELIABILITY T16).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from bs4 import BeautifulSoup, CData, NavigableString, ParserRejectedMarkup, Tag
from bs4.builder import LXMLTreeBuilder

from crawlers.charset import CharsetSource, decode_document
from crawlers.parse.dates import at_time, find_date, parse_datetime
from crawlers.parse.errors import ParseError
from crawlers.parse.text import BODY_MAX, LINE_MAX, clip, one_line, tidy
from crawlers.parse.urls import absolute_http_url, same_site, site_of

# BeautifulSoup builds some 40k nodes a CPU second on the development machine; past this many tags the rest
# of a document is dropped, so that one document stays well inside the 2 s budget. Real pages are far below.
MAX_TAGS = 30_000
# BeautifulSoup links each new node by walking up the open elements, so building costs tags × depth:
# '<span>' * 15000 followed by 15000 strings took two minutes. Deeper elements are flattened into their
# ancestor at this depth (their text is kept). Real pages nest 20-40 deep.
MAX_DEPTH = 100

_BLOCKS = frozenset({
    "address", "article", "blockquote", "body", "caption", "dd", "details", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "html",
    "legend", "li", "main", "menu", "ol", "p", "pre", "section", "summary", "table", "tbody", "tfoot",
    "thead", "tr", "ul",
})
_CELLS = frozenset({"td", "th"})
_DROPPED = frozenset({
    "aside", "button", "canvas", "datalist", "dialog", "embed", "form", "head", "iframe", "input", "map",
    "math", "nav", "noscript", "object", "option", "script", "select", "style", "svg", "template",
    "textarea", "title",
})
_DROPPED_ROLES = frozenset({
    "alertdialog", "banner", "complementary", "contentinfo", "dialog", "menu", "menubar", "navigation",
    "search", "toolbar",
})
# class/id words of Japanese and western CMS boilerplate, compared without "-" and "_".
_BOILERPLATE_WORDS = frozenset({
    "breadcrumb", "breadcrumbs", "pankuzu", "topicpath", "gnav", "globalnav", "globalmenu", "localnav",
    "sidebar", "sidenav", "sidemenu", "skip", "skiplink", "sns", "share", "pagetop", "gotop", "menu", "nav",
    "navi", "navigation",
})
_PAGE_CHROME_WORDS = frozenset({"header", "footer", "siteheader", "sitefooter"})
_SECTIONING = frozenset({"main", "article"})
_MIN_PARAGRAPH = 10  # characters of text before a block counts as a paragraph in the density score

_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8}){0,6}")
_KANA = re.compile(r"[\u3041-\u30ff]")

_PUBLISHED_META = (
    "article:published_time", "og:published_time", "datepublished", "dcterms.issued", "dc.date.issued",
    "dcterms.date", "dc.date", "date", "pubdate", "publishdate",
)


@dataclass(frozen=True)
class HtmlPage:
    url: str
    """The fetched URL, in canonical form."""
    canonical_url: str
    """``<link rel=canonical>`` when it is http(s) on the same site as ``url``, else ``url``."""
    title: str
    text: str
    published_at: datetime | None
    links: tuple[str, ...]
    encoding: str
    encoding_source: CharsetSource
    language: str | None


def extract_html(content: bytes, *, url: str, content_type: str | None = None) -> HtmlPage:
    fetched = absolute_http_url(url)
    if fetched is None:
        raise ParseError(f"ページの URL が http または https の URL ではありません: {url[:200]}")
    decoded = decode_document(content, content_type, "html")
    soup = _soup(decoded.text)
    tags = _collect(soup)
    metas = _metas(tags)
    base = _base_url(tags, fetched)
    root = _main_root(soup)
    text, time_value = _render(root, sectioned=_in_sectioning(root))
    return HtmlPage(
        url=fetched,
        canonical_url=_canonical(tags, base, fetched),
        title=_title(tags, metas) or _first_line(text),
        text=text,
        published_at=_published_at(tags, metas, time_value, text),
        links=_links(tags, base),
        encoding=decoded.encoding,
        encoding_source=decoded.source,
        language=_language(tags, metas, text),
    )


def page_draft(page: HtmlPage) -> dict:
    """A ``page`` record draft; ``source`` and ``provenance`` are the pipeline's to add."""
    draft = {
        "kind": "page",
        "title": clip(page.title or page.canonical_url, LINE_MAX),
        "body": clip(page.text, BODY_MAX),
        "url": page.canonical_url,
        "site": site_of(page.canonical_url),
    }
    if page.published_at:
        draft["published_at"] = page.published_at.isoformat()
    return draft


def document_url(content: bytes, content_type: str | None = None) -> str | None:
    """The absolute http(s) URL a document declares for itself (canonical link, else og:url), for uploads,
    which have no fetched URL."""
    tags = _collect(_soup(decode_document(content, content_type, "html").text))
    declared = [link.get("href") for link in _canonical_links(tags)]
    declared.append(_metas(tags).get("og:url"))
    urls = (absolute_http_url(href) for href in declared if isinstance(href, str))
    return next((url for url in urls if url), None)


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment (feed summaries), by the same rules as a page's main text."""
    soup = _soup(fragment)
    return _render(soup, sectioned=True)[0]


def _soup(text: str) -> BeautifulSoup:
    # The leading newline keeps BeautifulSoup from warning that short markup "looks like a URL or a file
    # name" or that a document starting with <?xml "looks like XML": both are expected on a hostile web,
    # and warnings are errors in our tests. Whitespace before the first tag does not change an HTML parse.
    try:
        return BeautifulSoup("\n" + _within_tag_budget(text), builder=_ShallowTreeBuilder())
    except ParserRejectedMarkup as exc:
        raise ParseError(f"HTML として読めません: {exc}") from exc


class _ShallowTreeBuilder(LXMLTreeBuilder):
    """BeautifulSoup's lxml HTML builder, with elements below ``MAX_DEPTH`` flattened into their ancestor
    and comments left out (nothing reads them, and each one costs a node).

    ``start``, ``end`` and ``comment`` are lxml's parser-target callbacks, which this builder implements."""

    _depth = 0  # open elements, counted whether or not they were kept

    def feed(self, markup: str | bytes) -> None:
        self._depth = 0
        super().feed(markup)

    def start(self, tag: str | bytes, attrib: dict, nsmap: dict | None = None) -> None:
        self._depth += 1
        if self._depth <= MAX_DEPTH:
            super().start(tag, attrib, nsmap or {})

    def end(self, tag: str | bytes) -> None:
        self._depth -= 1
        if self._depth < MAX_DEPTH:
            super().end(tag)

    def comment(self, text: str | bytes) -> None:
        # Dropped without ending the text before it: the text on either side becomes one string, which renders
        # the same, where ending it made bs4 walk the open elements once per comment (15,000 comments inside
        # nested spans: 0.43 s, and over T16's 2 s under the fuzzer; crashers/html-comments-in-nested-spans).
        pass


def _within_tag_budget(text: str) -> str:
    position = -1
    for _ in range(MAX_TAGS):
        position = text.find("<", position + 1)
        if position == -1:
            return text
    return text[:position]


class _Event(Enum):
    START = 1
    END = 2
    TEXT = 3


def _walk(root: Tag, *, sectioned: bool) -> Iterator[tuple[_Event, Tag | NavigableString]]:
    """Start, end and text events in document order, leaving out dropped elements and their contents.

    ``sectioned`` says whether ``root`` is inside ``<main>``/``<article>``: page-level headers and footers
    are chrome, but an article's own header holds its title and date.
    """
    yield _Event.START, root
    stack = [(root, iter(root.contents), sectioned)]
    while stack:
        tag, children, inside = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            yield _Event.END, tag
        elif isinstance(child, Tag):
            if not _dropped(child, inside):
                yield _Event.START, child
                stack.append((child, iter(child.contents), inside or _is_sectioning(child)))
        elif type(child) in (NavigableString, CData):  # not comments, doctypes, processing instructions
            yield _Event.TEXT, child


def _dropped(tag: Tag, sectioned: bool) -> bool:
    if tag.name in _DROPPED or (tag.name in ("header", "footer") and not sectioned):
        return True
    attrs = tag.attrs
    role = attrs.get("role")
    if isinstance(role, str) and role.strip().lower() in _DROPPED_ROLES:
        return True
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).strip().lower() == "true":
        return True
    style = attrs.get("style")
    if isinstance(style, str) and "display:none" in style.replace(" ", "").lower():
        return True
    words = _attribute_words(tag)
    return bool(words & _BOILERPLATE_WORDS) or (not sectioned and bool(words & _PAGE_CHROME_WORDS))


def _attribute_words(tag: Tag) -> set[str]:
    values = tag.get("class") or []
    if isinstance(values, str):
        values = values.split()
    identifier = tag.get("id")
    if isinstance(identifier, str):
        values = [*values, identifier]
    return {value.lower().replace("-", "").replace("_", "") for value in values}


def _is_sectioning(tag: Tag) -> bool:
    role = tag.get("role")
    return tag.name in _SECTIONING or (isinstance(role, str) and role.strip().lower() == "main")


def _in_sectioning(tag: Tag) -> bool:
    return _is_sectioning(tag) or any(_is_sectioning(parent) for parent in tag.parents)


def _main_root(soup: BeautifulSoup) -> Tag:
    """``<main>``/role=main with the most text, else a lone ``<article>``, else the densest block."""
    body = soup.body or soup
    parent: dict[int, Tag] = {}
    own_text: dict[int, int] = defaultdict(int)  # text whose nearest block is this element, links excluded
    total: dict[int, int] = defaultdict(int)  # all text below, summed when the element ends
    linked: dict[int, int] = defaultdict(int)
    mains: list[Tag] = []
    articles: list[Tag] = []
    stack: list[tuple[Tag, Tag, bool]] = []  # (element, its nearest block, inside a link)
    for event, node in _walk(body, sectioned=False):
        if event is _Event.START:
            if stack:
                parent[id(node)] = stack[-1][0]
            block = node if node.name in _BLOCKS or node.name in _CELLS or not stack else stack[-1][1]
            stack.append((node, block, node.name == "a" or (bool(stack) and stack[-1][2])))
            if _is_sectioning(node):
                (articles if node.name == "article" else mains).append(node)
        elif event is _Event.END:
            element = stack.pop()[0]
            if stack:
                total[id(stack[-1][0])] += total[id(element)]
                linked[id(stack[-1][0])] += linked[id(element)]
        else:
            length = len(node.strip())
            element, block, in_link = stack[-1]
            total[id(element)] += length
            if in_link:
                linked[id(element)] += length
            else:
                own_text[id(block)] += length
    if mains:
        return max(mains, key=lambda tag: total[id(tag)])
    if len(articles) == 1:
        return articles[0]
    return _densest(body, parent, own_text, total, linked)


def _densest(body: Tag, parent: dict[int, Tag], own_text: dict[int, int], total: dict[int, int],
             linked: dict[int, int]) -> Tag:
    """Readability's idea: each paragraph scores for its parent, half for its grandparent; link-heavy
    blocks (menus, link lists) are discounted by their link density."""
    score: dict[int, float] = defaultdict(float)
    elements: dict[int, Tag] = {id(body): body}
    for block_id, length in own_text.items():
        if length < _MIN_PARAGRAPH:
            continue
        up = parent.get(block_id)
        for weight in (1.0, 0.5):
            if up is None:
                break
            score[id(up)] += length * weight
            elements[id(up)] = up
            up = parent.get(id(up))
    best = max(
        elements,
        key=lambda key: score[key] * (1 - linked[key] / total[key]) if total[key] else 0.0,
    )
    return elements[best]


def _render(root: Tag, *, sectioned: bool) -> tuple[str, str | None]:
    """The text below ``root`` (blocks on their own lines) and the first ``<time datetime>`` in it."""
    parts: list[str] = []
    time_value = None
    for event, node in _walk(root, sectioned=sectioned):
        if event is _Event.TEXT:
            parts.append(node)
            continue
        name = node.name
        if name in _BLOCKS or name == "br":
            parts.append("\n")
        elif name in _CELLS:
            parts.append(" ")
        if event is _Event.START and name == "time" and time_value is None:
            value = node.get("datetime")
            time_value = value if isinstance(value, str) else None
    return tidy("".join(parts)), time_value


_COLLECTED = frozenset({"a", "area", "base", "h1", "html", "link", "meta", "script", "title"})


def _collect(soup: BeautifulSoup) -> dict[str, list[Tag]]:
    """The elements the metadata comes from, by name, in one pass (bs4's find_all costs a pass each)."""
    found: dict[str, list[Tag]] = defaultdict(list)
    for node in soup.descendants:
        if isinstance(node, Tag) and node.name in _COLLECTED:
            found[node.name].append(node)
    return found


def _metas(tags: dict[str, list[Tag]]) -> dict[str, str]:
    """``<meta name|property|itemprop|http-equiv=… content=…>`` by lowercased key, the first of each."""
    found: dict[str, str] = {}
    for meta in tags["meta"]:
        content = meta.get("content")
        if not isinstance(content, str):
            continue
        for attribute in ("property", "name", "itemprop", "http-equiv"):
            key = meta.get(attribute)
            if isinstance(key, str):
                found.setdefault(key.strip().lower(), content.strip())
    return found


def _base_url(tags: dict[str, list[Tag]], fetched: str) -> str:
    href = next((base.get("href") for base in tags["base"] if base.get("href")), None)
    return (absolute_http_url(href, fetched) if isinstance(href, str) else None) or fetched


def _canonical_links(tags: dict[str, list[Tag]]) -> list[Tag]:
    return [link for link in tags["link"] if "canonical" in _rel(link) and link.get("href")]


def _canonical(tags: dict[str, list[Tag]], base: str, fetched: str) -> str:
    for link in _canonical_links(tags):
        href = link.get("href")
        url = absolute_http_url(href, base) if isinstance(href, str) else None
        # Another site's URL is not believed: it would let a page take over that site's record.
        return url if url and same_site(url, fetched) else fetched
    return fetched


def _rel(tag: Tag) -> list[str]:
    rel = tag.get("rel") or []
    return [value.lower() for value in (rel.split() if isinstance(rel, str) else rel)]


def _title(tags: dict[str, list[Tag]], metas: dict[str, str]) -> str:
    candidates = [tag.get_text() for tag in tags["title"][:1]]
    candidates.append(metas.get("og:title", ""))
    candidates += [tag.get_text() for tag in tags["h1"][:1]]
    return next((title for candidate in candidates if (title := one_line(candidate))), "")


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def _published_at(tags: dict[str, list[Tag]], metas: dict[str, str], time_value: str | None, text: str
                  ) -> datetime | None:
    for key in _PUBLISHED_META:
        if key in metas and (found := parse_datetime(metas[key])):
            return found
    if (value := _json_ld_published(tags)) and (found := parse_datetime(value)):
        return found
    if time_value and (found := parse_datetime(time_value)):
        return found
    day = find_date(text)
    return at_time(day) if day else None


def _json_ld_published(tags: dict[str, list[Tag]]) -> str | None:
    for script in tags["script"]:
        kind = script.get("type")
        if not isinstance(kind, str) or kind.strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.get_text())
        except (ValueError, RecursionError):  # invalid, or nested deeper than the decoder allows
            continue
        pending = [data]
        while pending:  # iterative: JSON-LD comes from the page and may nest deeply
            item = pending.pop()
            if isinstance(item, dict):
                if isinstance(published := item.get("datePublished"), str):
                    return published
                pending.extend(reversed(item.values()))
            elif isinstance(item, list):
                pending.extend(reversed(item))
    return None


def _links(tags: dict[str, list[Tag]], base: str) -> tuple[str, ...]:
    resolved: dict[str, str | None] = {}  # menus repeat hrefs; each is resolved once
    for anchor in [*tags["a"], *tags["area"]]:
        href = anchor.get("href")
        if isinstance(href, str) and href not in resolved and "nofollow" not in _rel(anchor):
            resolved[href] = absolute_http_url(href, base)
    return tuple(dict.fromkeys(url for url in resolved.values() if url))


def _language(tags: dict[str, list[Tag]], metas: dict[str, str], text: str) -> str | None:
    declared = [tag.get("lang") for tag in tags["html"][:1]]
    for value in (*declared, metas.get("content-language")):
        if isinstance(value, str):
            candidate = value.strip().split(",")[0].strip()
            if len(candidate) <= 35 and _LANGUAGE_TAG.fullmatch(candidate):
                return candidate.lower()
    return "ja" if _KANA.search(text) else None
