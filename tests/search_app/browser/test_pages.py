"""The citizens' pages in real Chromium, at a phone and a desktop viewport: what a reader does, click by click.

Screenshots go to test-artifacts/screenshots/ for review.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Page, expect

from .conftest import Screenshot, Watch


def visit(page: Page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.ok, url
    assert_fits(page)


def assert_fits(page: Page) -> None:
    """Nothing wider than the viewport: a phone reader never scrolls sideways."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the viewport"


def total(page: Page) -> int:
    return int(page.locator(".results__count strong").inner_text().replace(",", ""))


def query_of(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def open_filters(page: Page) -> None:
    """On a phone the filters fold out; on a desktop they are a sidebar, already shown."""
    panel = page.locator("details.filters__panel")
    if not panel.evaluate("(details) => details.open || getComputedStyle(details).display === 'none'"):
        page.locator("summary.filters__summary").click()
    expect(page.locator("section.facet").first).to_be_visible()


def type_and_wait_for_suggestions(page: Page, text: str) -> None:
    """Type key by key, and wait for the suggestions of the whole text (those of a prefix may come first)."""
    wanted = f"/api/v1/suggest?q={quote(text)}"
    with page.expect_response(lambda response: response.url.endswith(wanted)):
        page.get_by_role("combobox", name="キーワードで探す").press_sequentially(text, delay=20)


def test_search_from_the_home_page(page: Page, base_url: str, screenshot: Screenshot) -> None:
    visit(page, base_url + "/")
    expect(page.get_by_role("heading", name="緊急のお知らせ")).to_be_visible()
    expect(page.get_by_role("heading", name="カテゴリから探す")).to_be_visible()
    screenshot("home")
    box = page.get_by_role("combobox", name="キーワードで探す")
    box.fill("防災")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q="))
    expect(page.get_by_role("heading", level=1)).to_have_text("「防災」の検索結果")
    expect(page.locator(".hit mark").first).to_have_text("防災")
    assert total(page) > 1
    assert_fits(page)
    screenshot("results")


def test_a_facet_narrows_the_results(page: Page, base_url: str, screenshot: Screenshot) -> None:
    visit(page, f"{base_url}/search?q=みなと")
    before = total(page)
    open_filters(page)
    page.locator('section[aria-labelledby="facet-kind"] a', has_text="催し・制度").click()
    page.wait_for_url(re.compile(r"kind=program"))
    after = total(page)
    assert 0 < after < before
    expect(page.locator(".hit .badge--kind")).to_have_text(["催し・制度"] * min(after, 10))
    expect(page.locator(".condition", has_text="種別")).to_contain_text("催し・制度")
    open_filters(page)
    screenshot("facet-selected")


def test_a_condition_is_removed_with_its_cross(page: Page, base_url: str) -> None:
    visit(page, f"{base_url}/search?q=みなと&kind=program&category=culture.event")
    narrowed = total(page)
    expect(page.locator(".condition")).to_have_count(3)
    page.get_by_role("link", name="「カテゴリ：イベント」を外す").click()
    page.wait_for_url(lambda url: "category=" not in url)
    assert query_of(page) == {"q": ["みなと"], "kind": ["program"]}
    assert total(page) > narrowed
    page.get_by_role("link", name="「キーワード：みなと」を外す").click()
    page.wait_for_url(lambda url: "q=" not in url)
    assert query_of(page) == {"kind": ["program"]}
    expect(page.get_by_role("heading", level=1)).to_have_text("絞り込み結果")


def test_a_date_range_narrows_the_results_and_its_condition_is_removed(
    page: Page, base_url: str, screenshot: Screenshot
) -> None:
    """The published-date form: a start date typed into the date input narrows the results, keeps the words
    and the other conditions, and shows as a removable condition."""
    hits = page.request.get(f"{base_url}/api/v1/search?q=みなと&size=100").json()["hits"]
    dates = sorted(hit["published_at"][:10] for hit in hits if hit.get("published_at"))
    start = dates[len(dates) // 2]  # about half the records were published on or after it
    visit(page, f"{base_url}/search?q=みなと&sort=newest&page=2&size=5")
    before = total(page)
    open_filters(page)
    page.locator("#date-from").fill(start)
    page.get_by_role("button", name="この期間で絞り込む").click()
    page.wait_for_url(re.compile(r"from="))
    assert query_of(page) == {"q": ["みなと"], "sort": ["newest"], "size": ["5"], "from": [start]}  # page 1 again
    after = total(page)
    assert 0 < after < before and after == sum(date >= start for date in dates)
    expect(page.get_by_role("link", name=f"「開始日：{start}」を外す")).to_be_visible()
    open_filters(page)
    expect(page.locator("#date-from")).to_have_value(start)
    screenshot("date-range")
    page.get_by_role("link", name=f"「開始日：{start}」を外す").click()
    page.wait_for_url(lambda url: "from=" not in url)
    assert total(page) == before


def test_pagination(page: Page, base_url: str, screenshot: Screenshot) -> None:
    visit(page, f"{base_url}/search?size=5")
    expect(page.locator(".results__range")).to_have_text("（1〜5件目）")
    first_titles = page.locator(".hit__title").all_inner_texts()
    page.get_by_role("link", name="次へ").click()
    page.wait_for_url(re.compile(r"page=2"))
    expect(page.locator(".results__range")).to_have_text("（6〜10件目）")
    assert set(page.locator(".hit__title").all_inner_texts()).isdisjoint(first_titles)
    expect(page.get_by_role("link", name="2ページ目")).to_have_attribute("aria-current", "page")
    page.get_by_role("navigation", name="ページ送り").scroll_into_view_if_needed()
    screenshot("pagination")
    page.get_by_role("link", name="10ページ目").click()
    page.wait_for_url(re.compile(r"page=10"))
    expect(page.locator(".results__range")).to_have_text("（46〜47件目）")
    expect(page.get_by_role("link", name="次へ")).to_have_count(0)


def test_a_suggestion_chosen_with_the_keyboard(page: Page, base_url: str, screenshot: Screenshot) -> None:
    visit(page, base_url + "/")
    box = page.get_by_role("combobox", name="キーワードで探す")
    listbox = page.get_by_role("listbox", name="検索候補")
    type_and_wait_for_suggestions(page, "モバイ")
    expect(listbox).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    options = listbox.get_by_role("option")
    expect(options.first).to_have_text("モバイルバッテリー")
    box.press("ArrowDown")
    box.press("ArrowDown")
    second = options.nth(1)
    expect(second).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", second.get_attribute("id") or "")
    expect(options.first).to_have_attribute("aria-selected", "false")
    chosen = second.inner_text()
    screenshot("suggestions", full_page=False)
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q="))
    assert query_of(page)["q"] == [chosen]
    expect(page.get_by_role("heading", level=1)).to_have_text(f"「{chosen}」の検索結果")


def test_escape_closes_the_suggestions_and_arrows_reopen_them(page: Page, base_url: str) -> None:
    visit(page, base_url + "/")
    box = page.get_by_role("combobox", name="キーワードで探す")
    listbox = page.get_by_role("listbox", name="検索候補")
    type_and_wait_for_suggestions(page, "みなと")
    expect(listbox).to_be_visible()
    box.press("Escape")
    expect(listbox).to_be_hidden()
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(box).to_have_value("みなと")
    box.press("ArrowUp")  # reopens on the last option
    expect(listbox).to_be_visible()
    expect(listbox.get_by_role("option").last).to_have_attribute("aria-selected", "true")
    box.press("Escape")
    box.press("Enter")  # nothing chosen: the typed words are searched
    page.wait_for_url(re.compile(r"/search\?q="))
    assert query_of(page)["q"] == ["みなと"]


def test_the_zero_result_page_helps(page: Page, base_url: str, screenshot: Screenshot) -> None:
    visit(page, f"{base_url}/search?q=ばってりい")
    expect(page.locator(".zero__lead")).to_have_text("「ばってりい」に一致する情報は見つかりませんでした。")
    expect(page.get_by_role("heading", name="もしかして")).to_be_visible()
    expect(page.get_by_role("heading", name="カテゴリから探す")).to_be_visible()
    screenshot("zero-results")
    page.get_by_role("link", name="バッテリー", exact=True).click()
    page.wait_for_url(re.compile(r"q=" + quote("バッテリー")))
    assert total(page) > 0


def test_an_urgent_notice_is_pinned_above_the_results(
    page: Page, base_url: str, screenshot: Screenshot
) -> None:
    visit(page, f"{base_url}/search?q=ポケットチャージ")
    alert = page.get_by_role("region", name="緊急のお知らせ")
    expect(alert).to_be_visible()
    expect(alert.get_by_role("heading", level=3)).to_have_text(
        "モバイルバッテリー「ポケットチャージ10000」回収・無償交換のお知らせ"
    )
    expect(alert).to_contain_text("重要度：重大")
    alert_box = alert.bounding_box()
    first_hit = page.locator(".hit").first.bounding_box()
    assert alert_box and first_hit and alert_box["y"] + alert_box["height"] <= first_hit["y"]
    screenshot("pinned-notice")
    alert.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/records/demo-notice-001$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "モバイルバッテリー「ポケットチャージ10000」回収・無償交換のお知らせ"
    )
    expect(page.locator("a.source-box__link")).to_have_attribute(
        "href", "https://www.sample-denki.example.com/recall/2026-pb10k"
    )
    expect(page.get_by_role("heading", name="関連する記録")).to_be_visible()
    assert_fits(page)
    screenshot("record-notice")


def test_a_program_record(page: Page, base_url: str, screenshot: Screenshot) -> None:
    visit(page, f"{base_url}/records/demo-program-003")
    expect(page.locator(".fields__row", has_text="開始")).to_contain_text("2026年9月6日（日） 9:00")
    expect(page.locator(".source-box")).to_contain_text("最終確認日")
    screenshot("record-program")


def test_keyboard_users_can_skip_to_the_content_and_see_focus(page: Page, base_url: str) -> None:
    visit(page, f"{base_url}/search?q=図書館")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="本文へ移動")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box and box["y"] >= 0  # shown on focus, not left off-screen
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.tagName, s.backgroundColor, s.outlineStyle]; }"
    )
    assert focused[0] == "A" and focused[1] == "rgb(255, 221, 0)"  # the yellow focus band


@pytest.mark.no_javascript
def test_everything_works_without_javascript(page: Page, base_url: str, watch: Watch) -> None:
    visit(page, base_url + "/")
    box = page.get_by_role("searchbox", name="キーワードで探す")  # no combobox without the script
    box.fill("みなと")
    box.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q="))
    before = total(page)
    panel = page.locator("details.filters__panel")
    if not page.locator("section.facet").first.is_visible():
        panel.locator("summary").click()
    page.locator('section[aria-labelledby="facet-kind"] a', has_text="施設").click()
    page.wait_for_url(re.compile(r"kind=facility"))
    assert 0 < total(page) < before
    page.get_by_role("link", name="新しい順").click()
    page.wait_for_url(re.compile(r"sort=newest"))
    assert query_of(page) == {"q": ["みなと"], "kind": ["facility"], "sort": ["newest"]}
