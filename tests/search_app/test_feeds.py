"""OpenSearch description and Atom feeds: right content types, valid XML whatever the text, the right entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from lxml import etree

from indexer.library import Library

ATOM = "{http://www.w3.org/2005/Atom}"
OS = "{http://a9.com/-/spec/opensearch/1.1/}"
LABEL_KEYS = ("revision", "kind_label", "provenance_label")


def fetch_xml(client: FlaskClient, url: str, mimetype: str, **params: str) -> etree._Element:
    response = client.get(url, query_string=params or None)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.content_type == f"{mimetype}; charset=utf-8"
    # A strict parser: anything that is not well-formed XML 1.0 fails here.
    return etree.fromstring(response.get_data(), etree.XMLParser(resolve_entities=False, recover=False))


def fetch_feed(client: FlaskClient, url: str, **params: str) -> etree._Element:
    feed = fetch_xml(client, url, "application/atom+xml", **params)
    assert feed.tag == f"{ATOM}feed"
    for required in ("title", "id", "updated"):
        assert feed.find(f"{ATOM}{required}") is not None
    datetime.fromisoformat(feed.findtext(f"{ATOM}updated"))
    for entry in feed.iter(f"{ATOM}entry"):
        for required in ("title", "id", "updated", "summary"):
            assert entry.find(f"{ATOM}{required}") is not None, required
        datetime.fromisoformat(entry.findtext(f"{ATOM}updated"))
        assert entry.find(f"{ATOM}link[@rel='alternate']") is not None
    return feed


def entry_ids(feed: etree._Element) -> list[str]:
    return [entry.findtext(f"{ATOM}id").rsplit(":", 1)[1] for entry in feed.iter(f"{ATOM}entry")]


def record_data(client: FlaskClient, record_id: str) -> dict[str, Any]:
    data = client.get(f"/api/v1/records/{record_id}").get_json()
    return {key: value for key, value in data.items() if key not in LABEL_KEYS}


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


# --- OpenSearch -------------------------------------------------------------------------------------------


def test_opensearch_description_names_the_library_and_its_urls(client: FlaskClient) -> None:
    description = fetch_xml(client, "/opensearch.xml", "application/opensearchdescription+xml")
    assert description.tag == f"{OS}OpenSearchDescription"
    assert description.findtext(f"{OS}ShortName") == "社会ライブラリ"
    assert description.findtext(f"{OS}InputEncoding") == "UTF-8"
    templates = {url.get("type"): url.get("template") for url in description.iter(f"{OS}Url")}
    assert set(templates) == {
        "text/html", "application/x-suggestions+json", "application/atom+xml", "application/opensearchdescription+xml",
    }  # fmt: skip
    for mimetype, template in templates.items():
        assert template.startswith("http://localhost/")
        if mimetype == "application/opensearchdescription+xml":
            continue
        assert "{searchTerms}" in template
        response = client.get(path_and_query(template.replace("{searchTerms}", "図書館")))
        assert response.status_code == 200, template
        assert response.mimetype == mimetype
    suggestions = client.get(
        path_and_query(templates["application/x-suggestions+json"].replace("{searchTerms}", "図"))
    )
    assert suggestions.get_json(force=True)[0] == "図"


# --- search feed ------------------------------------------------------------------------------------------


def test_search_feed_lists_the_same_hits_as_the_api(client: FlaskClient) -> None:
    feed = fetch_feed(client, "/search.atom?q=図書館&size=2")
    api = client.get("/api/v1/search?q=図書館&size=2").get_json()
    assert entry_ids(feed) == [hit["id"] for hit in api["hits"]]
    assert feed.findtext(f"{OS}totalResults") == str(api["total"])
    assert feed.findtext(f"{OS}itemsPerPage") == "2"
    assert "図書館" in feed.findtext(f"{ATOM}title")
    first = next(feed.iter(f"{ATOM}entry"))
    assert "<mark>図書館</mark>" in first.findtext(f"{ATOM}summary")  # escaped HTML, unescaped by the parser
    assert first.find(f"{ATOM}summary").get("type") == "html"
    links = {(link.get("rel"), link.get("type")): link.get("href") for link in first.iter(f"{ATOM}link")}
    assert path_and_query(links[("alternate", "text/html")]) == f"/records/{api['hits'][0]['id']}"
    assert (
        path_and_query(links[("alternate", "application/json")]) == f"/api/v1/records/{api['hits'][0]['id']}"
    )


def test_search_feed_takes_the_search_parameters(client: FlaskClient) -> None:
    feed = fetch_feed(client, "/search.atom?kind=notice&sort=newest&size=100")
    api = client.get("/api/v1/search?kind=notice&sort=newest&size=100").get_json()
    assert entry_ids(feed) == [hit["id"] for hit in api["hits"]]
    alternate = feed.find(f"{ATOM}link[@rel='alternate']").get("href")
    assert path_and_query(alternate) == "/search?kind=notice&sort=newest"
    kinds = {
        c.get("term") for c in feed.iter(f"{ATOM}category") if c.get("scheme") == "urn:social-library:kind"
    }
    assert kinds == {"notice"}


@pytest.mark.parametrize(
    "q",
    ['<script>alert("x")</script>', "a & b", "]]>", "\x00\x01\x0b\x1f", "'\"", "\ufffe\uffff", "図書館\x00"],
)
def test_search_feed_is_valid_xml_whatever_the_query(client: FlaskClient, q: str) -> None:
    feed = fetch_feed(client, "/search.atom", q=q)
    query = feed.find(f"{OS}Query")
    assert query.get("searchTerms") == "".join(ch for ch in q if ch >= " " and ch not in "\ufffe\uffff")


def test_hostile_record_text_stays_text_in_the_feed(client: FlaskClient, library: Library) -> None:
    hostile = '<img src=x onerror="alert(1)"> & ]]> \x0b「危険」'
    record = {**record_data(client, "demo-faq-001"), "id": "test-hostile", "title": hostile, "body": hostile}
    library.ingest(record, author="tests", summary="hostile text")
    feed = fetch_feed(client, "/search.atom?q=危険")
    entry = next(e for e in feed.iter(f"{ATOM}entry") if e.findtext(f"{ATOM}id").endswith("test-hostile"))
    assert entry.findtext(f"{ATOM}title") == hostile.replace("\x0b", "")
    summary = entry.findtext(f"{ATOM}summary")
    assert "<img" not in summary and "&lt;img" in summary  # shown as text by a reader that renders the HTML


def test_bad_feed_parameters_get_the_html_error_page(client: FlaskClient) -> None:
    response = client.get("/search.atom?page=0")
    assert response.status_code == 400
    assert response.content_type == "text/html; charset=utf-8"


def test_feed_searches_are_not_logged(client: FlaskClient, library: Library) -> None:
    from search_app.searchlog import zero_result_queries

    client.get("/search.atom?q=存在しない語ぬぬぬ")
    with client.application.app_context():
        assert zero_result_queries(library) == []


# --- notices feed -----------------------------------------------------------------------------------------


def test_notices_feed_lists_active_notices_newest_first(client: FlaskClient, library: Library) -> None:
    now = datetime.now(UTC)
    base = record_data(client, "demo-notice-002")
    library.ingest(
        {**base, "id": "test-expired", "valid_until": (now - timedelta(days=1)).isoformat(),
         "published_at": now.isoformat()},
        author="tests", summary="expired yesterday",
    )  # fmt: skip
    library.ingest(
        {**base, "id": "test-fresh", "valid_until": (now + timedelta(days=30)).isoformat(),
         "published_at": (now - timedelta(hours=1)).isoformat()},
        author="tests", summary="valid for a month",
    )  # fmt: skip
    feed = fetch_feed(client, "/notices.atom")
    ids = entry_ids(feed)
    assert ids[0] == "test-fresh"
    assert "test-expired" not in ids
    assert {"demo-notice-001", "demo-notice-002"} <= set(ids)
    published = [entry.findtext(f"{ATOM}published") for entry in feed.iter(f"{ATOM}entry")]
    stamps = [datetime.fromisoformat(stamp) for stamp in published if stamp]
    assert stamps == sorted(stamps, reverse=True)
    for entry in feed.iter(f"{ATOM}entry"):
        kinds = [
            c.get("term")
            for c in entry.iter(f"{ATOM}category")
            if c.get("scheme") == "urn:social-library:kind"
        ]
        assert kinds == ["notice"]
