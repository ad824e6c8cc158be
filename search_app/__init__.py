"""The Flask application: citizens' search pages, the public JSON API and feeds (DESIGN layout).

`create_app` follows the app-factory pattern: defaults, then the test override, then LIBRARY_FLASK_* variables;
resources live in `app.extensions`, never in module globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from indexer.config import Settings
from indexer.library import Library
from indexer.tasks import celery_init_app

DEFAULTS: dict[str, Any] = {
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "SEARCH_LOG": True,
    "SEARCH_LOG_BATCH": 50,  # search log rows written per INSERT (search_app/searchlog.py)
    "SEARCH_LOG_MAX_AGE": 5.0,  # seconds a buffered row may wait for its batch
    "HSTS": False,  # send Strict-Transport-Security over plain http too (behind a TLS proxy; security.py)
    # __Host- session cookie, Secure (T19); an intranet served over plain http sets LIBRARY_FLASK_SESSION_COOKIE_SECURE=false.
    "SESSION_COOKIE_SECURE": True,
    "PROXY_HOPS": 0,
    "SEARCH_CACHE_SECONDS": 2.0,  # result lifetime where the engine has no version (cache.py); 0: cache off
    "SEARCH_CACHE_ENTRIES": 2048,  # results kept per process, least recently used out (about 16 KiB each)
    "SEARCH_CACHE_SHARED": True,  # the workers share results in a file of the data directory (shared_cache.py)
    "SEARCH_CACHE_SHARED_ENTRIES": 8192,  # rows of that file, oldest out (about 1.3 KiB each, compressed)
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.json.ensure_ascii = False  # Japanese as UTF-8, not \uXXXX (Flask 3 ignores JSON_AS_ASCII)
    app.config.from_mapping(DEFAULTS)
    if test_config:
        app.config.from_mapping(test_config)
    app.config.from_prefixed_env("LIBRARY_FLASK")
    init_library(app)
    celery_init_app(app)

    from search_app import api, auth, contributions, errors, feeds, security, views

    security.init_app(app)
    errors.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(contributions.bp)
    app.register_blueprint(contributions.moderation_bp)
    from search_app import admin_ingest  # sources, crawl runs and uploads (issue 4)
    app.register_blueprint(admin_ingest.bp)
    from search_app import editing  # editors correct records (issue 5)
    app.register_blueprint(editing.bp)
    from search_app import notices_api, shop_notices, shops_admin  # shops push urgent notices (issue 5)
    app.register_blueprint(notices_api.bp)
    app.register_blueprint(shop_notices.bp)
    app.register_blueprint(shops_admin.bp)
    auth.register_blueprints(app)
    # Last: it attaches the access check, CSRF and the rate limits to every route registered above.
    auth.init_app(app)
    share_results(app)  # signed with the secret key, which auth has just ensured
    return app


def init_library(app: Flask) -> None:
    """One Library per process; tests pass their own through LIBRARY_SETTINGS."""
    settings = app.config.get("LIBRARY_SETTINGS") or Settings.from_env()
    library = Library.open(settings)
    app.extensions["library"] = library
    from search_app.cache import ResultCache

    app.extensions["result_cache"] = ResultCache(
        float(app.config["SEARCH_CACHE_SECONDS"]), max_entries=int(app.config["SEARCH_CACHE_ENTRIES"])
    )


def share_results(app: Flask) -> None:
    """The embedded engine's results, shared by the server's worker processes (search_app/shared_cache.py)."""
    cache = app.extensions["result_cache"]
    if not app.config["SEARCH_CACHE_SHARED"] or cache.seconds <= 0:
        return
    from search_app.shared_cache import SharedResults

    cache.shared = SharedResults(
        Path(get_library(app).settings.data_dir) / "search-cache.sqlite3",
        app.config["SECRET_KEY"],
        max_rows=int(app.config["SEARCH_CACHE_SHARED_ENTRIES"]),
    )


def get_library(app: Flask) -> Library:
    return app.extensions["library"]
