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
from search_app import create_app, get_library

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

# Stored text that would run script if any of it reached the page as markup (RELIABILITY T17).
XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    '"><script>alert(1)</script>',
    "'><script>alert(1)</script>",
    '"onmouseover="alert(1)',
    "' onfocus='alert(1)' autofocus='",
    "` onmouseover=`alert(1)",
    "</mark><script>alert(1)</script>",
    "<mark onmouseover=alert(1)>mark</mark>",
    "</mark><img src=x onerror=alert(1)><mark>",
    "javascript:alert(1)",
    '<a href="javascript:alert(1)">click</a>',
    "<a href=JaVaScRiPt:alert(1)>x</a>",
    '<iframe src="javascript:alert(1)"></iframe>',
    "<body onload=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<scr<script>ipt>alert(1)</script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<IMG SRC=JaVaScRiPt:alert(1)>",
    '<object data="data:text/html,<script>alert(1)</script>">',
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "<style>@import 'javascript:alert(1)';</style>",
    "{{7*7}} {% raw %}${alert(1)}",
    "\u202e<script>alert(1)</script>\u202c",
    '\u202b"><img src=x onerror=alert(1)>\u202c',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<template><script>alert(1)</script></template>",
    '<base href="javascript:alert(1)//">',
]
XSS_WORD = "表示確認"  # in every hostile record, so one search lists them all


def xss_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for number, payload in enumerate(XSS_PAYLOADS, start=1):
        records.append(
            {
                "id": f"xss-{number:02d}",
                "kind": "faq",
                "title": f"{XSS_WORD}{number:02d} {payload}",
                "body": f"本文 {payload} の{XSS_WORD}、mark と script の語も含みます。",
                "provenance": "citizen",
                "tags": [payload],
                "organization": payload,
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
