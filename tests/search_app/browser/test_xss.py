"""T17: records whose fields hold script payloads (xss_corpus.py: about 270 texts and a dozen hostile URLs) are
inert in Chromium, and their text is shown as written: on the search results, the home page, every record page, and
the editor's pages (the edit form, the history, the diff, the moderation queue and its reviews).

The page fixture fails a test on any dialog, console error (a blocked inline script logs a CSP error) or uncaught
page error. Here each page is also checked for what the payloads would have made: an element other than the
page's own, an `on…` attribute, a link to something but http(s) or the site itself, markup inside a <mark>.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from schemas.errors import RecordValidationError
from schemas.records import validate_record

from .conftest import (
    XSS_CITIZEN_NAME,
    XSS_EDITOR,
    XSS_EDITOR_NAME,
    XSS_PASSWORD,
    XSS_PAYLOADS,
    XSS_SUGGESTIONS,
    XSS_WORD,
    Screenshot,
    xss_current_records,
)
from .xss_corpus import REFUSED_URLS

# Elements the pages themselves put in the parts that show record text.
PAGE_ELEMENTS = ["A", "CODE", "DD", "DIV", "DL", "DT", "H1", "H2", "H3", "LI", "MARK", "OL", "P", "SPAN", "STRONG", "UL"]
# And those of the editor's pages: tables, forms, and the diff's marks.
EDITOR_ELEMENTS = [*PAGE_ELEMENTS, "TABLE", "THEAD", "TBODY", "TR", "TH", "TD", "FORM", "BUTTON", "INPUT", "LABEL",
                   "TEXTAREA", "SELECT", "OPTION", "INS", "DEL", "SECTION", "SMALL", "CAPTION"]

INJECTED = """([selector, allowed]) => {
  const found = [];
  for (const region of document.querySelectorAll(selector)) {
    for (const element of region.querySelectorAll("*")) {
      if (!allowed.includes(element.tagName)) found.push("element " + element.tagName);
      if (element.tagName === "MARK" && element.children.length) found.push("markup inside <mark>");
    }
  }
  for (const link of document.querySelectorAll("a[href]")) {
    if (!["http:", "https:"].includes(link.protocol)) found.push("link to " + link.href);
  }
  for (const element of document.querySelectorAll("*")) {
    for (const attribute of element.attributes) {
      if (attribute.name.startsWith("on")) found.push("attribute " + attribute.name + " on " + element.tagName);
    }
  }
  for (const form of document.querySelectorAll("form[action]")) {
    if (!form.action.startsWith(location.origin + "/")) found.push("form to " + form.action);
  }
  return found;
}"""

RECORDS = xss_current_records()
PAYLOAD_RECORDS = [record_id for record_id, record in RECORDS.items() if record["kind"] == "faq"]


def one_line(text: str) -> str:
    return " ".join(text.split())


def assert_nothing_injected(page: Page, selector: str, allowed: list[str] = PAGE_ELEMENTS) -> None:
    assert page.locator(selector).count() > 0, selector
    assert page.evaluate(INJECTED, [selector, allowed]) == [], page.url


def test_results_show_hostile_titles_and_snippets_as_text(
    page: Page, xss_base_url: str, screenshot: Screenshot
) -> None:
    titles, snippets = [], []
    for number in range(1, len(RECORDS) // 100 + 2):  # every hostile record, a page of 100 at a time
        page.goto(f"{xss_base_url}/search?q={quote(XSS_WORD)}&size=100&page={number}")
        titles += [one_line(title) for title in page.locator(".hit__title").all_inner_texts()]
        snippets += page.locator(".hit__snippet").all_inner_texts()
        assert_nothing_injected(page, ".hits, .facet__list, .conditions__list")
    assert sorted(titles) == sorted(one_line(record["title"]) for record in RECORDS.values())
    shown = " ".join(snippets)
    assert "<script>alert(1)</script>" in shown and "<svg onload=alert(" in shown
    assert "&lt;mark&gt;" in shown  # already-escaped text stays as written, not decoded once more
    page.goto(f"{xss_base_url}/search?q={quote(XSS_WORD)}&size=50")
    expect(page.locator(".hit mark").first).to_be_visible()
    # The hostile notice is urgent and its title has the searched word: it is pinned too, as text.
    pinned = page.get_by_role("region", name="緊急のお知らせ")
    expect(pinned).to_contain_text("<script>alert('notice')</script>")
    expect(pinned).to_contain_text("<svg onload=alert('maker')>")
    assert_nothing_injected(page, ".hits, .alert__list, .facet__list, .conditions__list")
    screenshot("xss-results", full_page=False)


def test_highlight_markers_in_the_text_cannot_close_the_mark(page: Page, xss_base_url: str) -> None:
    page.goto(f"{xss_base_url}/search?q=mark+script")
    assert page.locator(".hit").count() > 0
    for mark in page.locator(".hit mark").all():
        assert mark.inner_text().lower() in ("mark", "script")
    assert_nothing_injected(page, ".hits")


def test_home_lists_a_hostile_urgent_notice_as_text(page: Page, xss_base_url: str) -> None:
    page.goto(xss_base_url + "/")
    notice = page.locator(".alert-notice", has_text=XSS_WORD)
    expect(notice).to_contain_text("</dd><script>alert('action')</script>")
    expect(notice).to_contain_text('"><script>alert("product")</script>')
    assert_nothing_injected(page, ".alert__list")


READ_RECORD_PAGE = """() => ({
  title: document.querySelector("h1").innerText,
  body: document.querySelector(".record__body").innerText,
  fields: document.querySelector(".fields").innerText,
  source: document.querySelector("a.source-box__link")?.getAttribute("href") ?? null,
})"""


@pytest.mark.parametrize("viewport", ["desktop"], indirect=True)  # the markup is the same at any width
def test_record_pages_show_every_hostile_field_as_text(page: Page, xss_base_url: str) -> None:
    for record_id, record in RECORDS.items():
        page.goto(f"{xss_base_url}/records/{record_id}")
        shown = page.evaluate(READ_RECORD_PAGE)
        assert one_line(shown["title"]) == one_line(record["title"]), record_id
        assert one_line(shown["body"]) == one_line(record["body"]), record_id
        for name in ("organization", "maker", "product", "hazard", "action", "site"):
            if name in record:
                assert one_line(record[name]) in one_line(shown["fields"]), (record_id, name)
        # A stored http(s) URL with quotes in it stays one attribute value (its scheme stored in lowercase).
        url = record.get("url")
        assert shown["source"] == (url and url[: url.index(":")].lower() + url[url.index(":") :]), record_id
        assert_nothing_injected(
            page, ".record__head, .record__body, .fields, .source-box__list, .related .hits"
        )


def test_the_corpus_is_large_and_every_payload_would_call_script_or_break_markup() -> None:
    assert len(XSS_PAYLOADS) >= 200 and len(set(XSS_PAYLOADS)) == len(XSS_PAYLOADS)
    assert sum("alert(" in payload or "&#" in payload for payload in XSS_PAYLOADS) >= 200


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_a_link_that_is_not_http_is_never_stored(url: str) -> None:
    record = {"id": "xss-refused", "kind": "page", "title": "リンク", "body": "本文", "url": url,
              "provenance": "government"}
    with pytest.raises(RecordValidationError):
        validate_record(record)


def log_in(page: Page, base_url: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("メールアドレス").fill(XSS_EDITOR)
    page.get_by_label("パスワード").fill(XSS_PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("button", name="ログアウト")).to_be_visible()


READ_EDIT_FORM = """() => ({
  title: document.querySelector("#field-title").value,
  body: document.querySelector("#field-body").value,
  organization: document.querySelector("#field-organization")?.value ?? null,
})"""


@pytest.mark.parametrize("viewport", ["desktop"], indirect=True)
def test_the_editors_pages_show_every_hostile_field_as_text(
    page: Page, xss_base_url: str, screenshot: Screenshot
) -> None:
    """The edit form holds each field as its value (a textarea cannot be closed from inside), and the history
    and the diff show the payloads, the summaries and the editor's name as text."""
    log_in(page, xss_base_url)
    for record_id in PAYLOAD_RECORDS:
        record = RECORDS[record_id]
        page.goto(f"{xss_base_url}/records/{record_id}/edit")
        shown = page.evaluate(READ_EDIT_FORM)
        # A text input's value loses its line breaks (HTML's value sanitization); a textarea keeps them. The
        # store trims the ends of every text.
        assert shown["title"] == record["title"].replace("\n", "").replace("\r", "").strip(), record_id
        assert shown["body"] == record["body"].strip(), record_id
        assert shown["organization"] == record["organization"].replace("\n", "").replace("\r", "").strip()
        assert_nothing_injected(page, ".edit-form", EDITOR_ELEMENTS)

        page.goto(f"{xss_base_url}/records/{record_id}/history")
        revisions = page.locator("table.revisions")
        payload = XSS_PAYLOADS[int(record_id.removeprefix("xss-")) - 1]
        expect(revisions).to_contain_text(one_line(f"要約 {payload}"))
        expect(revisions).to_contain_text(XSS_EDITOR_NAME)
        assert_nothing_injected(page, "table.revisions", EDITOR_ELEMENTS)

        page.goto(f"{xss_base_url}/records/{record_id}/diff?from=1&to=2")
        inserted = one_line(" ".join(page.locator(".diff ins").all_inner_texts()))
        following = record["body"].rpartition("追記 ")[2]
        assert one_line(following) in inserted or all(part in inserted for part in following.split()), record_id
        assert_nothing_injected(page, ".diff", EDITOR_ELEMENTS)
    screenshot("xss-diff", full_page=False)


@pytest.mark.parametrize("viewport", ["desktop"], indirect=True)
def test_the_moderation_queue_shows_hostile_suggestions_as_text(
    page: Page, xss_base_url: str, screenshot: Screenshot
) -> None:
    log_in(page, xss_base_url)
    page.goto(f"{xss_base_url}/moderation")
    queue = page.locator("table.moderation-queue")
    expect(queue).to_contain_text(XSS_CITIZEN_NAME)
    for number in range(1, XSS_SUGGESTIONS + 1):
        expect(queue).to_contain_text(one_line(f"{XSS_WORD}{number:03d} 提案 {XSS_PAYLOADS[number - 1]}"))
    assert_nothing_injected(page, "table.moderation-queue", EDITOR_ELEMENTS)
    screenshot("xss-moderation-queue", full_page=False)
    links = [link.get_attribute("href") for link in queue.locator("a").all()]
    assert len(links) >= XSS_SUGGESTIONS
    for href in links:
        page.goto(xss_base_url + str(href))
        main = page.locator("main")
        expect(main).to_contain_text("投稿者の説明")
        assert_nothing_injected(page, "main .moderation-diff, main .contribution-meta", EDITOR_ELEMENTS)
