"""OpenSearch description and Atom feeds: browsers add the library as a search engine, feed readers follow
a search or the active notices.

XML is built with lxml, which escapes text and attributes; characters XML 1.0 cannot carry at all (NUL and the
other C0 controls but tab and newlines) are dropped first, since user input and crawled text may hold them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request, url_for
from lxml import etree
from lxml.builder import ElementMaker
from werkzeug.urls import iri_to_uri

from indexer.library import Library
from indexer.search import MAX_PAGE_SIZE, Hit, Query, Results
from schemas import KIND_LABELS, PROVENANCE_LABELS, category_label, is_category
from search_app import get_library
from search_app.params import FILTER_PARAMS, query_from_args
from search_app.auth.policy import PUBLIC, access

bp = Blueprint("feeds", __name__)

ATOM_NS = "http://www.w3.org/2005/Atom"
OPENSEARCH_NS = "http://a9.com/-/spec/opensearch/1.1/"
ATOM_MIMETYPE = "application/atom+xml"
OPENSEARCH_MIMETYPE = "application/opensearchdescription+xml"
SITE_NAME = "社会ライブラリ"
# The HTML pages (search_app.views): the search page reads the same parameters as the feed.
SEARCH_PAGE_ENDPOINT = "search.search"
RECORD_PAGE_ENDPOINT = "search.record"
NOTICE_FEED_SIZE = 50
NOTICE_PAGES = 10  # how far back the notice feed looks for active notices, in pages of MAX_PAGE_SIZE
# The parameters a search URL carries over from the feed to the HTML page (paging is the feed's own).
SEARCH_PARAMS = ("q", *FILTER_PARAMS, "from", "to", "sort")

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

A = ElementMaker(namespace=ATOM_NS, nsmap={None: ATOM_NS, "opensearch": OPENSEARCH_NS})
OS = ElementMaker(namespace=OPENSEARCH_NS, nsmap={None: OPENSEARCH_NS})
# OpenSearch response elements inside an Atom feed, under the prefix the feed declares.
OS_IN_ATOM = ElementMaker(namespace=OPENSEARCH_NS, nsmap={"opensearch": OPENSEARCH_NS})


def xml_text(value: object) -> str:
    return _NOT_XML.sub("", str(value))


def _xml_response(root: etree._Element, mimetype: str) -> Response:
    body = etree.tostring(root, encoding="utf-8", xml_declaration=True, pretty_print=True)
    return Response(body, mimetype=mimetype)


def _stamp(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


# --- OpenSearch -------------------------------------------------------------------------------------------


@bp.get("/opensearch.xml")
@access(PUBLIC)
def opensearch() -> Response:
    # {searchTerms} must reach the browser as is, so it is appended after url_for (which would percent-encode it).
    search_page = url_for(SEARCH_PAGE_ENDPOINT, _external=True)
    description = OS.OpenSearchDescription(
        OS.ShortName(SITE_NAME),
        OS.Description("地域のお知らせ・リコール、商品、催し、施設などを日本語で検索します"),
        OS.InputEncoding("UTF-8"),
        OS.OutputEncoding("UTF-8"),
        OS.Language("ja"),
        OS.Url(type="text/html", method="get", template=f"{search_page}?q={{searchTerms}}"),
        OS.Url(
            type="application/x-suggestions+json",
            method="get",
            template=url_for("api.suggest", _external=True) + "?q={searchTerms}&fmt=opensearch",
        ),
        OS.Url(
            type=ATOM_MIMETYPE,
            method="get",
            template=url_for("feeds.search_atom", _external=True) + "?q={searchTerms}",
        ),
        OS.Url(
            type=OPENSEARCH_MIMETYPE,
            rel="self",
            template=url_for("feeds.opensearch", _external=True),
        ),
    )
    return _xml_response(description, OPENSEARCH_MIMETYPE)


# --- Atom -------------------------------------------------------------------------------------------------


def _hit_updated(hit: Hit) -> datetime | None:
    stamps = [stamp for stamp in (hit.published_at, hit.verified_at) if stamp]
    return max(stamps) if stamps else None


def _entry(hit: Hit, fallback_updated: datetime) -> etree._Element:
    entry = A.entry(
        A.title(xml_text(hit.title)),
        A.id(xml_text(f"urn:social-library:record:{hit.id}")),
        A.updated(_stamp(_hit_updated(hit) or fallback_updated)),
    )
    if hit.published_at:
        entry.append(A.published(_stamp(hit.published_at)))
    entry.append(
        A.link(
            rel="alternate",
            type="text/html",
            href=url_for(RECORD_PAGE_ENDPOINT, record_id=hit.id, _external=True),
        )
    )
    entry.append(
        A.link(
            rel="alternate",
            type="application/json",
            href=url_for("api.record", record_id=hit.id, _external=True),
        )
    )
    if hit.url:
        entry.append(A.link(rel="related", type="text/html", href=xml_text(hit.url)))  # the source
    entry.append(
        A.category(term=hit.kind, label=KIND_LABELS.get(hit.kind, hit.kind), scheme="urn:social-library:kind")
    )
    entry.append(
        A.category(
            term=hit.provenance,
            label=PROVENANCE_LABELS.get(hit.provenance, hit.provenance),
            scheme="urn:social-library:provenance",
        )
    )
    for category in hit.categories:
        label = category_label(category) if is_category(category) else category
        entry.append(
            A.category(term=xml_text(category), label=xml_text(label), scheme="urn:social-library:category")
        )
    if hit.organization:
        entry.append(A.author(A.name(xml_text(hit.organization))))
    # The snippet is HTML (escaped text with <mark>); type="html" carries it as escaped text, as Atom requires.
    entry.append(A.summary(xml_text(hit.snippet), type="html"))
    return entry


def _feed(title: str, feed_id: str, hits: Iterable[Hit], links: list[etree._Element]) -> etree._Element:
    now = datetime.now(UTC)
    hits = list(hits)
    stamps = [stamp for stamp in map(_hit_updated, hits) if stamp]
    feed = A.feed(
        A.title(xml_text(title)),
        A.id(xml_text(feed_id)),
        A.updated(_stamp(max(stamps) if stamps else now)),
        A.author(A.name(SITE_NAME)),
        *links,
    )
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", "ja")
    feed.extend(_entry(hit, now) for hit in hits)
    return feed


def _opensearch_elements(results: Results) -> list[etree._Element]:
    query = results.query
    return [
        OS_IN_ATOM.totalResults(str(results.total)),
        OS_IN_ATOM.startIndex(str((query.page - 1) * query.size + 1)),
        OS_IN_ATOM.itemsPerPage(str(query.size)),
        OS_IN_ATOM.Query(role="request", searchTerms=xml_text(query.text), startPage=str(query.page)),
    ]


@bp.get("/search.atom")
@access(PUBLIC)
def search_atom() -> Response:
    query = query_from_args(request.args)
    # Not written to the search log: feed readers poll one URL all day, which would drown what people ask.
    results = get_library(current_app).search(query)
    page_args = urlencode(
        [(name, value) for name, value in request.args.items(multi=True) if name in SEARCH_PARAMS]
    )
    search_page = url_for(SEARCH_PAGE_ENDPOINT, _external=True) + (f"?{page_args}" if page_args else "")
    title = (
        f"「{query.text.strip()}」の検索結果 - {SITE_NAME}" if query.text.strip() else f"新着 - {SITE_NAME}"
    )
    self_url = iri_to_uri(request.url)  # werkzeug gives the IRI, with the query's characters decoded
    links = [
        A.link(rel="self", type=ATOM_MIMETYPE, href=xml_text(self_url)),
        A.link(rel="alternate", type="text/html", href=xml_text(search_page)),
        A.link(rel="search", type=OPENSEARCH_MIMETYPE, href=url_for("feeds.opensearch", _external=True)),
        *_opensearch_elements(results),
    ]
    return _xml_response(_feed(title, self_url, results.hits, links), ATOM_MIMETYPE)


def _is_active(hit: Hit, now: datetime) -> bool:
    # Notices index their valid_until among the hit's details (indexer.documents.DISPLAY_FIELDS).
    valid_until = hit.details.get("valid_until")
    return not valid_until or datetime.fromisoformat(valid_until) >= now


def active_notices(library: Library, now: datetime, limit: int = NOTICE_FEED_SIZE) -> list[Hit]:
    """Published notices that have not expired, newest first."""
    active: list[Hit] = []
    for page in range(1, NOTICE_PAGES + 1):
        results = library.search(Query(kind=("notice",), sort="newest", page=page, size=MAX_PAGE_SIZE))
        active.extend(hit for hit in results.hits if _is_active(hit, now))
        if len(active) >= limit or page * MAX_PAGE_SIZE >= results.total:
            break
    return active[:limit]


@bp.get("/notices.atom")
@access(PUBLIC)
def notices_atom() -> Response:
    notices = active_notices(get_library(current_app), datetime.now(UTC))
    self_url = url_for("feeds.notices_atom", _external=True)
    links = [
        A.link(rel="self", type=ATOM_MIMETYPE, href=self_url),
        A.link(
            rel="alternate",
            type="text/html",
            href=url_for(SEARCH_PAGE_ENDPOINT, _external=True)
            + "?"
            + urlencode({"kind": "notice", "sort": "newest"}),
        ),
    ]
    return _xml_response(_feed(f"お知らせ・リコール - {SITE_NAME}", self_url, notices, links), ATOM_MIMETYPE)
