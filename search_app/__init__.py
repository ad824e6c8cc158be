"""The Flask application: citizens' search and, later, editing, notices and administration."""

from __future__ import annotations

from typing import Any

from flask import Flask

from indexer.config import Settings
from indexer.library import Library


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Defaults, then test overrides, then LIBRARY_FLASK_* environment variables."""
    app = Flask(__name__)
    app.config.from_mapping(JSON_AS_ASCII=False, MAX_CONTENT_LENGTH=2 * 1024 * 1024)
    if test_config:
        app.config.from_mapping(test_config)
    app.config.from_prefixed_env("LIBRARY_FLASK")
    init_library(app)

    from search_app.views import bp

    app.register_blueprint(bp)
    return app


def init_library(app: Flask) -> None:
    """One Library per process, kept in app.extensions (never a module global)."""
    settings = app.config.get("LIBRARY_SETTINGS") or Settings.from_env()
    app.extensions["library"] = Library.open(settings)


def get_library(app: Flask) -> Library:
    return app.extensions["library"]
