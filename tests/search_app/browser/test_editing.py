"""Editing in real Chromium: an editor corrects a record through the form and reads the change on the record page
and on the diff page, where the changed characters are marked.

Screenshots go to test-artifacts/screenshots/ for review.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from indexer.config import Settings
from search_app import create_app, get_library
from search_app.auth.accounts import create_user

from .conftest import Screenshot, Watch, serve

PASSWORD = "みなと市の図書館は駅の北口"
RECORD = "demo-notice-001"
NEW_PRODUCT = "モバイルバッテリー ポケットチャージ10000（白・黒の2色）"


@pytest.fixture()
def editing_url(demo_data_template: Path, tmp_path: Path) -> Iterator[str]:
    """Its own copy of the demo data: the test writes revisions."""
    directory = tmp_path / "editing-data"
    shutil.copytree(demo_data_template, directory)
    settings = Settings.from_env(data_dir=directory, database_url=f"sqlite:///{directory / 'library.db'}")
    app: Flask = create_app({"LIBRARY_SETTINGS": settings, "TESTING": True})
    with get_library(app).store.session() as db:
        create_user(db, email="editor@example.jp", display_name="NPO編集者", role="editor", password=PASSWORD)
        create_user(db, email="other@example.jp", display_name="もう一人の編集者", role="editor", password=PASSWORD)
    with serve(app) as url:
        yield url
    get_library(app).close()


def log_in(page: Page, base_url: str, email: str = "editor@example.jp") -> None:
    page.goto(base_url + "/login")
    page.get_by_label("メールアドレス").fill(email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("button", name="ログアウト")).to_be_visible()


def assert_fits(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the viewport"


def save_a_correction(page: Page, base_url: str) -> None:
    log_in(page, base_url)
    page.goto(f"{base_url}/records/{RECORD}")
    page.get_by_role("link", name="編集", exact=True).click()
    expect(page.get_by_role("heading", name="記録の編集")).to_be_visible()
    page.locator("#field-product").fill(NEW_PRODUCT)
    page.get_by_label("変更の要約").fill("色の表記を追加")
    page.get_by_role("button", name="保存する").click()


def test_a_saved_edit_shows_on_the_record_page(
    page: Page, editing_url: str, screenshot: Screenshot, watch: Watch
) -> None:
    log_in(page, editing_url)
    page.goto(f"{editing_url}/records/{RECORD}/edit")
    # Without a summary the form comes back with the message beside the field and the typed text kept.
    page.locator("#field-product").fill(NEW_PRODUCT)
    page.get_by_role("button", name="保存する").click()
    expect(page.locator("#error-summary")).to_contain_text("変更の要約を入力してください")
    expect(page.locator("#field-product")).to_have_value(NEW_PRODUCT)
    assert_fits(page)
    screenshot("edit-form-errors", full_page=False)
    # Chromium logs the 422 answer as a console error; that one is expected, any other still fails the test.
    expected = [error for error in watch.console_errors if "status of 422" in error and "/edit" in error]
    assert expected
    watch.console_errors[:] = [error for error in watch.console_errors if error not in expected]

    page.get_by_label("変更の要約").fill("色の表記を追加")
    page.get_by_role("button", name="保存する").click()

    page.wait_for_url(f"{editing_url}/records/{RECORD}")
    expect(page.locator(".editor-box .message--info")).to_contain_text("保存しました（第2版）")
    expect(page.locator(".fields")).to_contain_text("（白・黒の2色）")
    expect(page.locator(".source-box")).to_contain_text("第2版")
    assert_fits(page)
    screenshot("edit-saved")


def test_the_diff_page_marks_the_change(page: Page, editing_url: str, screenshot: Screenshot) -> None:
    save_a_correction(page, editing_url)
    page.wait_for_url(f"{editing_url}/records/{RECORD}")
    page.get_by_role("link", name="編集履歴").click()
    expect(page.get_by_role("cell", name="色の表記を追加")).to_be_visible()
    expect(page.get_by_role("cell", name="NPO編集者")).to_be_visible()
    assert_fits(page)
    screenshot("edit-history")

    page.get_by_role("link", name="前の版との差分").click()
    expect(page.get_by_role("heading", name="第1版と第2版の差分")).to_be_visible()
    changed = page.locator(".diff__field", has_text="製品")
    expect(changed.locator("ins")).to_have_text("（白・黒の2色）")
    expect(page.locator(".diff__field")).to_have_count(1)
    assert_fits(page)
    screenshot("edit-diff")


def test_two_editors_on_one_revision_the_second_sees_both_changes_and_keeps_the_text(
    page: Page, browser: Browser, editing_url: str, viewport: str, screenshot: Screenshot, watch: Watch
) -> None:
    other_context = browser.new_context(viewport=page.viewport_size, locale="ja-JP")
    other = other_context.new_page()
    try:
        log_in(page, editing_url)
        log_in(other, editing_url, "other@example.jp")
        page.goto(f"{editing_url}/records/{RECORD}/edit")
        other.goto(f"{editing_url}/records/{RECORD}/edit")  # both forms are made from revision 1

        other.locator("#field-hazard").fill("電池セルの不具合で、充電中に発火するおそれがあります。")
        other.get_by_label("変更の要約").fill("危険の内容を短く")
        other.get_by_role("button", name="保存する").click()
        other.wait_for_url(f"{editing_url}/records/{RECORD}")
    finally:
        other_context.close()

    page.locator("#field-contact").fill("サンプル電機 回収受付窓口 0120-000-101")
    page.get_by_label("変更の要約").fill("窓口の表記")
    page.get_by_role("button", name="保存する").click()

    expect(page.get_by_role("heading", name="ほかの人が先に保存しました")).to_be_visible()
    theirs = page.locator(".conflict__side", has_text="ほかの人の変更")
    expect(theirs.locator("ins").first).to_be_visible()
    expect(theirs).to_contain_text("発火するおそれがあります。")
    expect(page.locator(".conflict__side", has_text="あなたの変更")).to_contain_text("サンプル電機 回収受付窓口")
    expect(page.locator("#field-contact")).to_have_value("サンプル電機 回収受付窓口 0120-000-101")
    expect(page.locator("#field-hazard")).to_have_value("電池セルの不具合で、充電中に発火するおそれがあります。")
    expect(page.get_by_label("変更の要約")).to_have_value("窓口の表記")
    assert_fits(page)
    screenshot("edit-conflict")
    conflicts = [error for error in watch.console_errors if "status of 409" in error]
    assert conflicts
    watch.console_errors[:] = [error for error in watch.console_errors if error not in conflicts]

    page.get_by_role("button", name="保存する").click()  # saved on top of revision 2: both changes stay
    page.wait_for_url(f"{editing_url}/records/{RECORD}")
    expect(page.locator(".editor-box .message--info")).to_contain_text("保存しました（第3版）")
    expect(page.locator(".fields")).to_contain_text("発火するおそれがあります。")
    expect(page.locator(".fields")).to_contain_text("サンプル電機 回収受付窓口 0120-000-101")
