"""T18: every response carries the security headers, whatever route, method or error produced it."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flask import Flask
from werkzeug.routing import IntegerConverter
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from search_app.auth.policy import PUBLIC, access
from search_app.security import SERVER, RequestHandler, is_text_type

# Values for the URL arguments of the app's rules; a new argument name needs an entry here.
ARGUMENTS = {"record_id": "demo-notice-001"}
STATIC_MISSING = "no-such-file.css"


def csp_directives(value: str) -> dict[str, list[str]]:
    directives = {}
    for part in value.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def assert_secure(response: TestResponse | http.client.HTTPResponse, where: str) -> None:
    headers = response.headers
    csp = csp_directives(headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'self'"], where
    assert csp["object-src"] == ["'none'"], where
    assert csp["base-uri"] == ["'none'"], where
    assert csp["frame-ancestors"] == ["'none'"], where
    assert csp["form-action"] == ["'self'"], where
    assert "'unsafe-inline'" not in csp.get("script-src", csp["default-src"]), where
    assert "'unsafe-eval'" not in csp.get("script-src", csp["default-src"]), where
    assert headers["X-Content-Type-Options"] == "nosniff", where
    assert headers["Referrer-Policy"] in ("strict-origin-when-cross-origin", "same-origin", "no-referrer"), (
        where
    )
    assert "camera=()" in headers["Permissions-Policy"], where
    content_type = headers.get("Content-Type")
    status = response.status_code if isinstance(response, TestResponse) else response.status
    if status not in (204, 304):
        assert content_type, where
        mimetype = content_type.split(";")[0].strip()
        if is_text_type(mimetype):
            assert "charset=utf-8" in content_type.replace(" ", "").lower(), where
    server = headers.get("Server", "")
    assert not any(ch.isdigit() for ch in server), (where, server)


def static_file(app: Flask) -> str | None:
    folder = Path(app.static_folder or "")
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return files[0].relative_to(folder).as_posix() if files else None


def sample_value(rule: Any, name: str) -> str:
    return "1" if isinstance(rule._converters.get(name), IntegerConverter) else "x"


def crawl(app: Flask) -> Iterator[tuple[str, TestResponse]]:
    """Every rule with every method it allows (plus HEAD and OPTIONS), then errors the rules cannot produce."""
    client = app.test_client()
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        values: dict[str, Any] = {name: ARGUMENTS.get(name) or sample_value(rule, name) for name in rule.arguments}
        if rule.endpoint == "static":
            values["filename"] = static_file(app) or STATIC_MISSING
        url = adapter.build(rule.endpoint, values)
        for method in sorted(rule.methods or ()):
            yield f"{method} {url}", client.open(url, method=method)
    yield "GET static missing", client.get(f"/static/{STATIC_MISSING}")
    yield "GET unknown page", client.get("/no-such-page")
    yield "GET unknown API path", client.get("/api/v1/no-such-thing")
    yield "POST to a GET page", client.post("/")
    yield "POST to a GET API route", client.post("/api/v1/search")
    yield "GET bad API parameter", client.get("/api/v1/search?page=0")
    yield "GET bad page parameter", client.get("/search?page=0")
    yield "GET 500 in a page", client.get("/test-broken")
    yield "GET 500 in the API", client.get("/api/v1/test-broken")


@pytest.fixture()
def crawled_app(make_app: Callable[..., Flask]) -> Flask:
    app = make_app(PROPAGATE_EXCEPTIONS=False)

    def broken() -> None:
        raise RuntimeError("boom")

    app.add_url_rule("/test-broken", "test_broken", access(PUBLIC)(broken))
    app.add_url_rule("/api/v1/test-broken", "test_broken_api", access(PUBLIC)(broken))
    return app


def test_every_response_carries_the_security_headers(crawled_app: Flask) -> None:
    statuses = set()
    seen = 0
    for where, response in crawl(crawled_app):
        with response:
            assert_secure(response, where)
        statuses.add(response.status_code)
        seen += 1
    # The crawl did reach successes, client errors and server errors.
    assert {200, 400, 404, 405, 500} <= statuses
    assert seen > 10


def test_error_bodies_carry_no_stack_trace(crawled_app: Flask) -> None:
    client = crawled_app.test_client()
    for url in ("/test-broken", "/api/v1/test-broken"):
        body = client.get(url).get_data(as_text=True)
        assert "Traceback" not in body and "RuntimeError" not in body and "boom" not in body


def test_hsts_is_off_on_plain_http(app: Flask) -> None:
    assert "Strict-Transport-Security" not in app.test_client().get("/api/v1/ping").headers


@pytest.mark.parametrize("config", [{"PREFERRED_URL_SCHEME": "https"}, {"HSTS": True}])
def test_hsts_is_on_in_production(make_app: Callable[..., Flask], config: dict[str, Any]) -> None:
    app = make_app(**config)
    for url in ("/api/v1/ping", "/no-such-page"):
        assert app.test_client().get(url).headers["Strict-Transport-Security"] == (
            "max-age=31536000; includeSubDomains"
        )


def test_hsts_can_be_switched_on_from_the_environment(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIBRARY_FLASK_HSTS", "true")
    assert "Strict-Transport-Security" in make_app().test_client().get("/api/v1/ping").headers


def test_the_development_server_names_no_version(app: Flask) -> None:
    """Through werkzeug's own server, which would otherwise send "Werkzeug/x.y Python/x.y"."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=RequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for path in ("/api/v1/ping", "/no-such-page", "/opensearch.xml"):
            connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            connection.close()
            assert response.headers.get_all("Server") == [SERVER], path
            assert_secure(response, path)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_pages_seen_logged_in_or_behind_a_login_are_never_cached(app: Flask, client_as: Any) -> None:
    """T18: every page a logged-in admin gets, and every non-public page even when it only redirects to the
    login, says no-store; public pages read anonymously and static files stay cacheable."""
    from search_app.auth.policy import policy_of

    admin = client_as("admin")
    anonymous = app.test_client()
    adapter = app.url_map.bind("localhost")
    checked = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.endpoint == "static":
            continue
        values = {name: ARGUMENTS.get(name) or sample_value(rule, name) for name in rule.arguments}
        url = adapter.build(rule.endpoint, values)
        assert admin.get(url).headers.get("Cache-Control") == "no-store", url
        public = PUBLIC in (policy_of(app, rule.endpoint) or ())
        if not public:
            assert anonymous.get(url).headers.get("Cache-Control") == "no-store", url
        checked += 1
    assert checked >= 20
    assert anonymous.get("/").headers.get("Cache-Control") != "no-store"
    css = static_file(app)
    if css:
        response = admin.get(f"/static/{css}")
        response.close()  # a file response: its file is closed with it
        assert response.headers.get("Cache-Control") != "no-store"
