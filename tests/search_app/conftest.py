"""Fixtures for the web app: an app over a fresh data directory holding the demo records, and its test client.

The demo data is imported (and analysed) once per session into a template directory; each test gets its own copy,
so tests can write (search log, new records) without seeing each other, at the cost of a file copy.
"""

from __future__ import annotations

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
