"""Logging in and out in real Chromium: the __Host- Secure cookie works on http://127.0.0.1 (browsers treat
loopback as a secure context, so `make run` needs no TLS), the account menu appears, logout ends the session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from indexer.config import Settings
from search_app import create_app, get_library
from search_app.auth.accounts import create_user

from .conftest import Screenshot, serve

PASSWORD = "みなと市の図書館は駅の北口"


@pytest.fixture(scope="module")
def accounts_url(demo_data_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("browser-accounts")
    shutil.copytree(demo_data_template, directory, dirs_exist_ok=True)
    settings = Settings.from_env(data_dir=directory, database_url=f"sqlite:///{directory / 'library.db'}")
    app = create_app({"LIBRARY_SETTINGS": settings, "TESTING": True})
    with get_library(app).store.session() as db:
        create_user(db, email="editor@example.jp", display_name="NPO 編集者", role="editor", password=PASSWORD)
    with serve(app) as url:
        yield url
    get_library(app).close()


def test_login_and_logout(page: Page, accounts_url: str, screenshot: Screenshot) -> None:
    page.goto(f"{accounts_url}/admin/zero-results")
    expect(page).to_have_url(f"{accounts_url}/login?next=/admin/zero-results")
    page.get_by_label("メールアドレス").fill("editor@example.jp")
    page.get_by_label("パスワード").fill("違う合言葉ですけれども")
    page.get_by_role("button", name="ログイン").click()
    expect(page.get_by_role("alert")).to_contain_text("メールアドレスまたはパスワードが違います")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    expect(page).to_have_url(f"{accounts_url}/admin/zero-results")
    expect(page.get_by_role("heading", name="見つからなかった検索")).to_be_visible()
    navigation = page.get_by_role("navigation", name="アカウント")
    expect(navigation.get_by_role("link", name="NPO 編集者")).to_be_visible()
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    session = cookies["__Host-library_session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"
    screenshot("logged-in")
    navigation.get_by_role("button", name="ログアウト").click()
    expect(page.get_by_role("navigation", name="アカウント").get_by_role("link", name="ログイン")).to_be_visible()
    page.goto(f"{accounts_url}/admin/zero-results")
    expect(page).to_have_url(f"{accounts_url}/login?next=/admin/zero-results")
