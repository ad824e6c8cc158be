"""The Flask application: citizens' search pages, the public JSON API and feeds (DESIGN layout).

`create_app` follows the app-factory pattern: defaults, then the test override, then LIBRARY_FLASK_* variables;
resources live in `app.extensions`, never in module globals.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from indexer.config import Settings
from indexer.library import Library
from indexer.tasks import celery_init_app

DEFAULTS: dict[str, Any] = {
    "JSON_AS_ASCII": False,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "SEARCH_LOG": True,
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    if test_config:
        app.config.from_mapping(test_config)
    app.config.from_prefixed_env("LIBRARY_FLASK")
    init_library(app)
    celery_init_app(app)

    from search_app import api, errors, feeds, security, views

    security.init_app(app)
    errors.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(feeds.bp)
    return app


def init_library(app: Flask) -> None:
    """One Library per process; tests pass their own through LIBRARY_SETTINGS."""
    settings = app.config.get("LIBRARY_SETTINGS") or Settings.from_env()
    library = Library.open(settings)
    app.extensions["library"] = library


def get_library(app: Flask) -> Library:
    return app.extensions["library"]
