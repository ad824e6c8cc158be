"""T22: rate limits on the public search and the login, keyed by a client address that a forged
X-Forwarded-For cannot choose; each 429 is a security log event. (Across gunicorn workers with Redis:
tests/deploy/test_rate_limits.py.)"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from search_app.auth.ratelimit import LOGIN_LIMIT, SEARCH_LIMIT

SEARCH_PER_MINUTE = int(SEARCH_LIMIT.split("/")[0])
LOGIN_PER_MINUTE = int(LOGIN_LIMIT.split("/")[0])


@pytest.mark.parametrize("path", ["/api/v1/search?q=図書館", "/search?q=図書館", "/search.atom?q=図書館"])
def test_public_search_is_limited_per_address(app: Flask, path: str, caplog: pytest.LogCaptureFixture) -> None:
    client = app.test_client()
    statuses = [client.get(path).status_code for _ in range(SEARCH_PER_MINUTE)]
    assert set(statuses) == {200}
    with caplog.at_level(logging.WARNING, logger="library.security"):
        response = client.get(path)
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert any("rate limit exceeded" in record.getMessage() for record in caplog.records)
    # Another address is not affected.
    assert client.get(path, environ_base={"REMOTE_ADDR": "192.0.2.9"}).status_code == 200


def test_a_429_in_the_api_is_a_problem_in_japanese(app: Flask) -> None:
    client = app.test_client()
    for _ in range(SEARCH_PER_MINUTE):
        client.get("/api/v1/search?q=x")
    response = client.get("/api/v1/search?q=x")
    assert response.status_code == 429 and response.mimetype == "application/problem+json"
    assert "しばらく待って" in response.get_json()["detail"]


def test_forged_forwarded_for_does_not_change_the_key(app: Flask) -> None:
    client = app.test_client()
    statuses = [
        client.get("/api/v1/search?q=x", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(SEARCH_PER_MINUTE + 1)
    ]
    assert statuses[-1] == 429


def test_behind_one_proxy_the_proxys_view_of_the_client_counts(make_app: Callable[..., Flask]) -> None:
    client = make_app(PROXY_HOPS=1).test_client()
    # The proxy appends the real address last; whatever the client put before it is ignored.
    statuses = [
        client.get("/api/v1/search?q=x", headers={"X-Forwarded-For": f"198.51.100.{i}, 203.0.113.7"}).status_code
        for i in range(SEARCH_PER_MINUTE + 1)
    ]
    assert statuses[-1] == 429
    other = client.get("/api/v1/search?q=x", headers={"X-Forwarded-For": "203.0.113.8"})
    assert other.status_code == 200


def test_login_attempts_are_limited_per_address(app: Flask, make_user: Callable[..., Any], csrf_token: Any) -> None:
    client = app.test_client()
    token = csrf_token(client, "/login")
    # Different (unknown) accounts each time: the per-account lockout never triggers, the address limit does.
    statuses = [
        client.post("/login", data={"email": f"guess{i}@example.jp", "password": "x" * 12, "csrf_token": token})
        .status_code
        for i in range(LOGIN_PER_MINUTE + 1)
    ]
    assert statuses[:-1] == [200] * LOGIN_PER_MINUTE
    assert statuses[-1] == 429
    # Reading the form is not limited.
    assert client.get("/login").status_code == 200
