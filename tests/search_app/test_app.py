"""The app factory (search_app/__init__.py): JSON encoding and the declared configuration defaults."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, jsonify
from flask.testing import FlaskClient

from search_app import DEFAULTS


def test_search_json_holds_japanese_as_utf8_not_escapes(client: FlaskClient) -> None:
    response = client.get("/api/v1/search?q=図書館")
    raw = response.get_data(as_text=True)
    assert response.status_code == 200 and response.get_json()["total"] > 0
    assert "図書館" in raw and "\\u" not in raw


def test_every_json_response_of_the_app_is_utf8(app: Flask) -> None:
    # Flask 3 ignores JSON_AS_ASCII: the app's JSON provider itself is set (jsonify, errors, extensions).
    with app.test_request_context():
        assert jsonify({"q": "公民館"}).get_data(as_text=True).strip() == '{"q":"公民館"}'
    assert app.json.dumps({"q": "公民館"}) == '{"q": "公民館"}'


def test_settings_read_by_the_app_have_declared_defaults(make_app: Callable[..., Flask]) -> None:
    assert {"SEARCH_LOG", "SEARCH_LOG_BATCH", "SEARCH_LOG_MAX_AGE", "HSTS"} <= DEFAULTS.keys()
    assert "JSON_AS_ASCII" not in DEFAULTS  # a Flask 2 setting that Flask 3 no longer reads
    app = make_app()
    assert (app.config["SEARCH_LOG_BATCH"], app.config["SEARCH_LOG_MAX_AGE"], app.config["HSTS"]) == (
        50,
        5.0,
        False,
    )
    assert "Strict-Transport-Security" not in app.test_client().get("/api/v1/ping").headers
