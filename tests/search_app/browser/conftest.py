"""Browser tests: Debian's Chromium, driven by Playwright, against the app served by werkzeug on 127.0.0.1.

Playwright's own browser download cannot work on the build machines, so the system Chromium is launched by path.
Without it the tests skip and say why, except under CI (the CI variable is set), which installs Chromium: there a
missing browser is an error, not a reason to pass quietly.

Every test gets a fresh browser context at one of two viewports, a phone (390×844) and a desktop (1280×800). The
context records dialogs, console errors and uncaught page errors, and the test fails if there were any: a dialog
would be a script run from data (T17), and the pages have no reason to log an error.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright
from werkzeug.serving import make_server

from indexer.config import Settings
from indexer.contributions import submit_edit
from indexer.editing import edit_record
from search_app import create_app, get_library
from search_app.auth.accounts import create_user

from .xss_corpus import HOSTILE_URLS, payloads

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 10_000

# Stored text that would run script if any of it reached the page as markup (RELIABILITY T17): xss_corpus.py.
XSS_PAYLOADS = payloads()
XSS_WORD = "表示確認"  # in every hostile record, so one search lists them all


def xss_records() -> list[dict[str, Any]]:
    """One record per payload (in its title, body, tags and organization), one per hostile URL, and a notice and a
    page whose every shown field is hostile. As imported: xss_current_records() has them after the edits."""
    records: list[dict[str, Any]] = []
    for number, payload in enumerate(XSS_PAYLOADS, start=1):
        records.append(
            {
                "id": f"xss-{number:03d}",
                "kind": "faq",
                "title": f"{XSS_WORD}{number:03d} {payload}",
                "body": f"本文 {payload} の{XSS_WORD}、mark と script の語も含みます。",
                "provenance": "citizen",
                "tags": [payload[:100]],  # the longest a tag may be
                "organization": payload,
            }
        )
    for number, url in enumerate(HOSTILE_URLS, start=1):
        records.append(
            {
                "id": f"xss-url-{number:02d}",
                "kind": "page",
                "title": f"{XSS_WORD} リンク{number:02d}",
                "body": f"{XSS_WORD} のリンク先 {url}",
                "url": url,
                "site": XSS_PAYLOADS[number - 1],
                "provenance": "government",
            }
        )
    # The kinds whose fields appear in a hit's summary, in pinned notices and behind links.
    records.append(
        {
            "id": "xss-notice",
            "kind": "notice",
            "title": f"{XSS_WORD} 緊急 <script>alert('notice')</script>",
            "body": f"<img src=x onerror=alert('body')> {XSS_WORD}",
            "maker": "<svg onload=alert('maker')>",
            "product": '"><script>alert("product")</script>',
            "hazard": "<iframe src=javascript:alert('hazard')>",
            "action": "</dd><script>alert('action')</script>",
            "model_numbers": ["<b>M-1</b>"],
            "provenance": "maker",
            "urgent": True,
            "severity": "critical",
            "url": 'https://example.com/"onmouseover="alert(1)"x="',
        }
    )
    records.append(
        {
            "id": "xss-page",
            "kind": "page",
            "title": f"{XSS_WORD} ページ",
            "body": "<script>alert('page')</script>",
            "url": 'https://example.com/"><script>alert(1)</script>',
            "site": "<img src=x onerror=alert('site')>",
            "provenance": "government",
        }
    )
    return records


XSS_PASSWORD = "表示確認のための長い合言葉です"
XSS_EDITOR = "xss-editor@example.jp"
XSS_EDITOR_NAME = "<img src=x onerror=alert('editor')>編集者"
XSS_CITIZEN_NAME = "\"><script>alert('citizen')</script>"
XSS_SUGGESTIONS = 40  # records with a citizen's pending suggestion, which the moderation queue lists


def xss_edit(number: int) -> dict[str, str]:
    """What the editor changed in record xss-<number>: its body gains the next payload (the diff shows both)."""
    following = XSS_PAYLOADS[number % len(XSS_PAYLOADS)]
    return {"body": f"本文 {XSS_PAYLOADS[number - 1]} の{XSS_WORD}、mark と script の語も含みます。追記 {following}"}


def xss_current_records() -> dict[str, dict[str, Any]]:
    """The hostile records as they are now, by id: the payload records at their second revision."""
    current = {}
    for record in xss_records():
        if record["kind"] == "faq":
            record = {**record, **xss_edit(int(record["id"].removeprefix("xss-")))}
        current[record["id"]] = record
    return current


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """The app on an ephemeral loopback port, in a thread, for as long as the block runs."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _app_over_copy(template: Path, directory: Path) -> Flask:
    """An app over a copy of the session's demo data (tests/search_app/conftest.py)."""
    shutil.copytree(template, directory, dirs_exist_ok=True)
    settings = Settings.from_env(data_dir=directory, database_url=f"sqlite:///{directory / 'library.db'}")
    return create_app({"LIBRARY_SETTINGS": settings, "TESTING": True})


@pytest.fixture(scope="session")
def base_url(demo_data_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo records."""
    app = _app_over_copy(demo_data_template, tmp_path_factory.mktemp("browser-demo"))
    with serve(app) as url:
        yield url
    get_library(app).close()


@pytest.fixture(scope="session")
def xss_base_url(demo_data_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo records and the hostile ones, kept apart so that the other pages' screenshots stay readable."""
    app = _app_over_copy(demo_data_template, tmp_path_factory.mktemp("browser-xss"))
    library = get_library(app)
    lines = io.StringIO("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in xss_records()))
    report = library.import_lines(lines, author="tests", summary="T17 corpus")
    assert not report.errors, report.errors
    # The editor pages show the same text again, with the editor's and a citizen's names and notes (T17).
    with library.store.session() as db:
        editor = create_user(db, email=XSS_EDITOR, display_name=XSS_EDITOR_NAME, role="editor",
                             password=XSS_PASSWORD)
        citizen = create_user(db, email="xss-citizen@example.jp", display_name=XSS_CITIZEN_NAME, role="citizen",
                              password=XSS_PASSWORD)
        editor_id, citizen_id = editor.id, citizen.id
    for number, payload in enumerate(XSS_PAYLOADS, start=1):
        edit_record(library, f"xss-{number:03d}", xss_edit(number), editor_id=editor_id, author=f"user:{editor_id}",
                    summary=f"要約 {payload}", expected_revision=1)
        if number <= XSS_SUGGESTIONS:
            submit_edit(library.store, citizen_id, f"xss-{number:03d}",
                        {"title": f"{XSS_WORD}{number:03d} 提案 {payload}"}, base_revision=2,
                        note=f"投稿者の説明 {payload}")
    with serve(app) as url:
        yield url
    library.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}: install Debian's chromium package to run the browser tests"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI installs it, so its absence is a failure here)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Watch:
    """What a page did that it must not: dialogs (dismissed at once), console errors, uncaught errors."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []

    def dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} at {message.location.get('url')}")

    def page_error(self, error: Exception) -> None:
        self.page_errors.append(str(error))


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture()
def watch() -> Watch:
    return Watch()


@pytest.fixture()
def page(browser: Browser, viewport: str, watch: Watch, request: pytest.FixtureRequest) -> Iterator[Page]:
    java_script = request.node.get_closest_marker("no_javascript") is None
    context = browser.new_context(
        viewport=VIEWPORTS[viewport], locale="ja-JP", java_script_enabled=java_script
    )
    context.set_default_timeout(TIMEOUT_MS)
    new_page = context.new_page()
    new_page.on("dialog", watch.dialog)
    new_page.on("console", watch.console)
    new_page.on("pageerror", watch.page_error)
    yield new_page
    context.close()
    assert watch.dialogs == [], "a dialog opened: script ran"
    assert watch.page_errors == []
    assert watch.console_errors == []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_javascript: run the browser test with JavaScript disabled")


Screenshot = Callable[..., Path]


@pytest.fixture()
def screenshot(page: Page, viewport: str) -> Screenshot:
    """`screenshot(name)` saves test-artifacts/screenshots/<name>-<viewport>.png: the full page, or with
    `full_page=False` the first screen only (for very long pages, whose full shot costs seconds)."""

    def take(name: str, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}-{viewport}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
