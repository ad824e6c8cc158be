"""T20: every cookie-authenticated state change needs the session's own, fresh CSRF token and a same-site origin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from search_app.auth.policy import PUBLIC, SHOP_KEY, policy_of

NEW_PASSWORD = "新しい合言葉は海辺の灯台です"


def form_routes(app: Flask) -> list[tuple[str, str]]:
    """Every route that takes an unsafe method and is reached with cookies (the bearer-key API is not)."""
    found = []
    for rule in app.url_map.iter_rules():
        unsafe = (rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}
        if unsafe and SHOP_KEY not in (policy_of(app, rule.endpoint) or ()):
            found.extend((rule.endpoint, method) for method in sorted(unsafe))
    return found


def test_every_form_route_refuses_a_missing_token(app: Flask, make_user: Callable[..., Any],
                                                  login: Callable[..., FlaskClient]) -> None:
    from werkzeug.routing import IntegerConverter

    admin = login(make_user("admin"))
    routes = form_routes(app)
    assert len(routes) >= 8
    adapter = app.url_map.bind("localhost")
    for endpoint, method in routes:
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        values = {n: 1 if isinstance(rule._converters[n], IntegerConverter) else "x" for n in rule.arguments}
        url = adapter.build(endpoint, values)
        response = admin.open(url, method=method, data={"email": "a@example.jp"})
        assert response.status_code == 400, (endpoint, response.status_code)
        assert "フォームの有効期限が切れたか" in response.get_data(as_text=True)


def test_a_token_from_another_session_is_refused(app: Flask, make_user: Callable[..., Any],
                                                 login: Callable[..., FlaskClient], csrf_token: Any) -> None:
    editor = make_user("editor")
    victim, attacker = login(editor), login(make_user("citizen"))
    foreign = csrf_token(attacker, "/account")
    response = victim.post("/account/password", data={
        "csrf_token": foreign, "current_password": "みなと市の図書館は駅の北口",
        "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD})
    assert response.status_code == 400
    # And the password did not change: the old one still logs in.
    login(editor)


def test_an_expired_token_is_refused(app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient],
                                     csrf_token: Any) -> None:
    with time_machine.travel("2026-11-23 09:00 +0000", tick=False) as clock:
        client = login(make_user("admin"))
        token = csrf_token(client, "/account")
        clock.shift(app.config["WTF_CSRF_TIME_LIMIT"] + 1)
        client.get("/admin/users")  # keeps the session alive
        response = client.post("/admin/users/1/sessions/revoke", data={"csrf_token": token})
        assert response.status_code == 400


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
])
def test_cross_site_requests_are_refused_even_with_a_token(app: Flask, make_user: Callable[..., Any],
                                                           login: Callable[..., FlaskClient], csrf_token: Any,
                                                           headers: dict[str, str]) -> None:
    client = login(make_user("admin"))
    token = csrf_token(client, "/account")
    response = client.post("/admin/users/1/sessions/revoke", data={"csrf_token": token}, headers=headers)
    assert response.status_code == 400
    same_site = client.post("/admin/users/1/sessions/revoke", data={"csrf_token": token},
                            headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 302


def test_the_api_blueprint_takes_no_cookies(app: Flask) -> None:
    """The only CSRF exemption is the bearer-key API: none of its unsafe routes accepts a session cookie."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and (rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}:
            assert policy_of(app, rule.endpoint) in (frozenset({SHOP_KEY}), frozenset({PUBLIC})), rule.endpoint


def test_behind_a_tls_proxy_the_same_host_over_https_is_same_site(app: Flask, make_user: Callable[..., Any],
                                                                  login: Callable[..., FlaskClient],
                                                                  csrf_token: Any) -> None:
    client = login(make_user("admin"))
    token = csrf_token(client, "/account")
    response = client.post("/admin/users/1/sessions/revoke", data={"csrf_token": token},
                           headers={"Origin": "https://localhost"})
    assert response.status_code == 302
    response = client.post("/admin/users/1/sessions/revoke", data={"csrf_token": token},
                           headers={"Origin": "https://localhost.evil.example"})
    assert response.status_code == 400


def test_the_embedded_secret_key_is_made_once_and_kept_private(make_app: Callable[..., Flask],
                                                               data_dir: Any) -> None:
    first = make_app().config["SECRET_KEY"]
    assert make_app().config["SECRET_KEY"] == first and len(first) == 64
    key_file = data_dir / "secret_key"
    assert key_file.stat().st_mode & 0o077 == 0
    assert not list(data_dir.glob(".secret_key.*"))


def test_refused_forms_and_anonymous_changes_are_audited(app: Flask, client: FlaskClient,
                                                          make_user: Callable[..., Any],
                                                          login: Callable[..., FlaskClient],
                                                          csrf_token: Callable[..., str]) -> None:
    """T30: every refused access is in the audit log: a missing token, a cross-site origin, a change without a
    session; CR/LF in what the client controls cannot forge a line."""
    from sqlalchemy import select

    from indexer.store import AuditRow
    from search_app import get_library

    editor = login(make_user("editor"))
    assert editor.post("/logout", data={}).status_code == 400
    assert editor.post("/logout", data={}, headers={"Origin": "https://evil.example"}).status_code == 400
    assert client.post("/records/demo-notice-001/retract", data={}).status_code in (400, 401)
    assert app.test_client().post("/api/v1/notices", json={}).status_code == 401
    assert client.post("/records/x%0D%0Afake%20line/retract", data={}).status_code in (400, 401)
    # With a valid token of an anonymous session, the change is refused for want of a login.
    anonymous = app.test_client()
    token = csrf_token(anonymous)
    assert anonymous.post("/records/demo-notice-001/retract", data={"csrf_token": token}).status_code == 401
    with get_library(app).store.session(readonly=True) as session:
        rows = session.scalars(select(AuditRow).where(AuditRow.outcome == "denied").order_by(AuditRow.id)).all()
    actions = [row.action for row in rows]
    assert "csrf.refused" in actions and "csrf.cross_site" in actions and "api_key.refused" in actions
    assert "access.unauthenticated" in actions
    cross = next(row for row in rows if row.action == "csrf.cross_site")
    assert cross.detail["origin"] == "https://evil.example" and cross.actor.startswith("user:")
    assert all("\r" not in row.target and "\n" not in row.target for row in rows)
    assert any("\\r\\nfake line" in row.target for row in rows)
