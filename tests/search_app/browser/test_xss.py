"""T17: records whose fields hold script payloads are inert in Chromium, and their text is shown as written.

The page fixture fails a test on any dialog, console error (a blocked inline script logs a CSP error) or uncaught
page error. Here each page is also checked for what the payloads would have made: an element other than the
page's own, an `on…` attribute, a link to something but http(s) or the site itself, markup inside a <mark>.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from .conftest import XSS_WORD, Screenshot, xss_records

# Elements the pages themselves put in the parts that show record text.
PAGE_ELEMENTS = [
    "A",
    "CODE",
    "DD",
    "DIV",
    "DL",
    "DT",
    "H1",
    "H2",
    "H3",
    "LI",
    "MARK",
    "OL",
    "P",
    "SPAN",
    "STRONG",
    "UL",
]

INJECTED = f"""(selector) => {{
  const found = [];
  for (const region of document.querySelectorAll(selector)) {{
    for (const element of region.querySelectorAll("*")) {{
      if (!{PAGE_ELEMENTS}.includes(element.tagName)) found.push("element " + element.tagName);
      for (const attribute of element.attributes) {{
        if (attribute.name.startsWith("on")) found.push("attribute " + attribute.name + " on " + element.tagName);
      }}
      if (element.tagName === "MARK" && element.children.length) found.push("markup inside <mark>");
    }}
  }}
  for (const link of document.querySelectorAll("a[href]")) {{
    if (!["http:", "https:"].includes(link.protocol)) found.push("link to " + link.href);
  }}
  for (const element of document.querySelectorAll("*")) {{
    for (const attribute of element.attributes) {{
      if (attribute.name.startsWith("on")) found.push("attribute " + attribute.name + " on " + element.tagName);
    }}
  }}
  return found;
}}"""

RECORDS = {record["id"]: record for record in xss_records()}


def one_line(text: str) -> str:
    return " ".join(text.split())


def assert_nothing_injected(page: Page, selector: str) -> None:
    assert page.locator(selector).count() > 0, selector
    assert page.evaluate(INJECTED, selector) == []


def test_results_show_hostile_titles_and_snippets_as_text(
    page: Page, xss_base_url: str, screenshot: Screenshot
) -> None:
    page.goto(f"{xss_base_url}/search?q={quote(XSS_WORD)}&size=50")
    titles = [one_line(title) for title in page.locator(".hit__title").all_inner_texts()]
    assert sorted(titles) == sorted(one_line(record["title"]) for record in RECORDS.values())
    snippets = " ".join(page.locator(".hit__snippet").all_inner_texts())
    assert "<script>alert(1)</script>" in snippets and "<img src=x onerror=alert(1)>" in snippets
    assert "&lt;script&gt;" in snippets  # already-escaped text stays as written, not decoded once more
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
        # A stored http(s) URL with quotes in it stays one attribute value.
        assert shown["source"] == record.get("url"), record_id
        assert_nothing_injected(
            page, ".record__head, .record__body, .fields, .source-box__list, .related .hits"
        )
