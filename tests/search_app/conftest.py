"""Fixtures for the web app: an app over a fresh data directory holding the demo records, and its test client.

The demo data is imported (and analysed) once per session into a template directory; each test gets its own copy,
so tests can write (search log, new records) without seeing each other, at the cost of a file copy.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from indexer.config import Settings
from indexer.library import Library
from search_app import create_app, get_library

DEMO_RECORDS = resources.files("indexer") / "demo" / "records.jsonl"

AppFactory = Callable[..., Flask]


def settings_for(directory: Path) -> Settings:
    return Settings.from_env(data_dir=directory, database_url=f"sqlite:///{directory / 'library.db'}")


@pytest.fixture(scope="session")
def demo_data_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed data directory (SQLite + tantivy) with every demo record imported and indexed."""
    directory = tmp_path_factory.mktemp("demo-data")
    library = Library.open(settings_for(directory))
    try:
        with DEMO_RECORDS.open(encoding="utf-8") as lines:
            report = library.import_lines(lines, author="tests", summary="demo data for the web tests")
        assert not report.errors, report.errors
    finally:
        library.close()
    return directory


@pytest.fixture()
def make_app(data_dir: Path, demo_data_template: Path) -> Iterator[AppFactory]:
    """`make_app(**config)`: an app over this test's copy of the demo data, with extra config on top."""
    shutil.copytree(demo_data_template, data_dir, dirs_exist_ok=True)
    apps: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = create_app({"LIBRARY_SETTINGS": settings_for(data_dir), "TESTING": True, **config})
        apps.append(app)
        return app

    yield make
    for app in apps:
        get_library(app).close()


@pytest.fixture()
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def library(app: Flask) -> Library:
    return get_library(app)


# --- accounts --------------------------------------------------------------------------------------------------------

TEST_PASSWORD = "みなと市の図書館は駅の北口"  # long, not common, with full-width characters (T21)
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture()
def make_user(app: Flask) -> Callable[..., Any]:
    """`make_user(role, email=None, password=TEST_PASSWORD, **fields)` → an Account, stored in the app's database."""
    from search_app.auth.accounts import Account, create_user

    counter = iter(range(1, 10_000))

    def make(role: str = "citizen", email: str | None = None, password: str = TEST_PASSWORD, **fields: Any) -> Any:
        email = email or f"{role}{next(counter)}@example.jp"
        with get_library(app).store.session() as db:
            row = create_user(
                db, email=email, display_name=fields.pop("display_name", f"{role}さん"), role=role,
                password=password, **fields,
            )
            return Account.of(row)

    return make


def csrf_token_of(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the client's session, read from a form as a browser would."""
    match = CSRF_FIELD.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF field on {path}"
    return match.group(1)


@pytest.fixture()
def csrf_token() -> Callable[..., str]:
    return csrf_token_of


def login_client(client: FlaskClient, account: Any, password: str = TEST_PASSWORD) -> FlaskClient:
    token = csrf_token_of(client)
    response = client.post("/login", data={"email": account.email, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


@pytest.fixture()
def login(app: Flask) -> Callable[..., FlaskClient]:
    """`login(account)` → a new test client logged in as that account (`login(account, client)` reuses one)."""

    def log_in(account: Any, client: FlaskClient | None = None, password: str = TEST_PASSWORD) -> FlaskClient:
        return login_client(client or app.test_client(), account, password)

    return log_in


@pytest.fixture()
def client_as(make_user: Callable[..., Any], login: Callable[..., FlaskClient]) -> Callable[..., FlaskClient]:
    """`client_as("editor", **fields)` → a client logged in as a new account of that role."""

    def make(role: str, **fields: Any) -> FlaskClient:
        return login(make_user(role, **fields))

    return make


def post_form(client: FlaskClient, path: str, data: dict[str, Any] | None = None, *, form_page: str | None = None,
              **kwargs: Any) -> Any:
    """POST a form with the session's CSRF token, read from `form_page` (default: the login page, any form will do)."""
    token = csrf_token_of(client, form_page or "/account")
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


@pytest.fixture()
def post() -> Callable[..., Any]:
    return post_form
