"""T19: server-side sessions: cookie flags, a new id on login, logout and revokes that really end a session,
idle and absolute lifetimes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from indexer.store import WebSessionRow
from search_app import get_library
from search_app.auth.sessions import ABSOLUTE_LIFETIME, IDLE_TIMEOUT, hash_session_id

COOKIE = "__Host-library_session"


def set_cookie(response: Any) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        cookie.load(header)
    return cookie


def session_id(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def test_anonymous_reading_sets_no_cookie(client: FlaskClient) -> None:
    for path in ("/", "/search?q=図書館", "/records/demo-notice-001", "/api/v1/search?q=x"):
        assert "Set-Cookie" not in client.get(path).headers, path


def test_cookie_flags(app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient]) -> None:
    client = app.test_client()
    response = client.get("/login")
    morsel = set_cookie(response)[COOKIE]
    assert morsel["secure"] and morsel["httponly"] and morsel["path"] == "/"
    assert morsel["samesite"] == "Lax" and not morsel["domain"]
    admin = make_user("admin")
    token = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"email": admin.email, "password": "みなと市の図書館は駅の北口",
                                           "csrf_token": token})
    # An admin's cookie is Strict: it is never sent on a cross-site navigation.
    assert set_cookie(response)[COOKIE]["samesite"] == "Strict"


def test_plain_http_installs_use_a_cookie_without_the_host_prefix(make_app: Callable[..., Flask]) -> None:
    response = make_app(SESSION_COOKIE_SECURE=False).test_client().get("/login")
    morsel = set_cookie(response)["library_session"]
    assert not morsel["secure"] and morsel["httponly"]


def test_the_session_id_changes_on_login(app: Flask, make_user: Callable[..., Any],
                                         login: Callable[..., FlaskClient]) -> None:
    client = app.test_client()
    client.get("/login")
    before = session_id(client)
    assert before
    login(make_user("citizen"), client)
    after = session_id(client)
    assert after and after != before
    # The pre-login id is dead: replaying it does not carry the login, nor even the old CSRF session.
    with get_library(app).store.session(readonly=True) as db:
        row = db.get(WebSessionRow, hash_session_id(before))
        assert row is not None and row.revoked_at is not None


def test_replaying_the_cookie_after_logout_is_refused(app: Flask, make_user: Callable[..., Any],
                                                      login: Callable[..., FlaskClient], post: Callable[..., Any]) -> None:
    client = login(make_user("editor"))
    stolen = session_id(client)
    assert client.get("/admin/zero-results").status_code == 200
    response = post(client, "/logout")
    assert response.status_code == 302
    assert session_id(client) is None
    attacker = app.test_client()
    attacker.set_cookie(COOKIE, stolen, domain="localhost")
    response = attacker.get("/admin/zero-results")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert attacker.get("/api/v1/ping").status_code == 200


def test_idle_timeout_and_absolute_lifetime(app: Flask, make_user: Callable[..., Any],
                                            login: Callable[..., FlaskClient]) -> None:
    with time_machine.travel("2026-11-23 09:00 +0000", tick=False) as clock:
        client = login(make_user("editor"))
        assert client.get("/admin/zero-results").status_code == 200
        # Active use keeps it alive past the idle timeout, up to the absolute lifetime.
        elapsed = timedelta()
        while elapsed + IDLE_TIMEOUT / 2 < ABSOLUTE_LIFETIME:
            clock.shift(IDLE_TIMEOUT / 2)
            elapsed += IDLE_TIMEOUT / 2
            assert client.get("/admin/zero-results").status_code == 200, elapsed
        clock.shift(ABSOLUTE_LIFETIME - elapsed + timedelta(seconds=1))
        assert client.get("/admin/zero-results").status_code == 302

        client = login(make_user("editor"))
        clock.shift(IDLE_TIMEOUT + timedelta(seconds=1))
        assert client.get("/admin/zero-results").status_code == 302


@pytest.mark.parametrize("how", ["password change", "admin revoke", "account disabled"])
def test_other_sessions_end(app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient],
                            post: Callable[..., Any], how: str) -> None:
    editor = make_user("editor")
    phone, laptop = login(editor), login(editor)
    admin = login(make_user("admin"))
    if how == "password change":
        new = "新しい合言葉は海辺の灯台です"
        response = post(laptop, "/account/password", {"current_password": "みなと市の図書館は駅の北口",
                                                      "new_password": new, "new_password_confirm": new})
        assert response.status_code == 302
        assert laptop.get("/admin/zero-results").status_code == 200  # the one that changed it continues
    elif how == "admin revoke":
        assert post(admin, f"/admin/users/{editor.id}/sessions/revoke").status_code == 302
    else:
        response = post(admin, f"/admin/users/{editor.id}", {"role": "editor", "disabled": "1"})
        assert response.status_code == 302
        assert laptop.get("/admin/zero-results").status_code == 302
    assert phone.get("/admin/zero-results").status_code == 302
    if how != "password change":
        with get_library(app).store.session(readonly=True) as db:
            live = db.scalars(select(WebSessionRow).where(WebSessionRow.user_id == editor.id,
                                                          WebSessionRow.revoked_at.is_(None))).all()
        assert live == []


def test_a_disabled_account_cannot_log_in(app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient],
                                          post: Callable[..., Any]) -> None:
    editor = make_user("editor")
    admin = login(make_user("admin"))
    post(admin, f"/admin/users/{editor.id}", {"role": "editor", "disabled": "1"})
    client = app.test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"email": editor.email, "password": "みなと市の図書館は駅の北口",
                                           "csrf_token": token})
    assert response.status_code == 200 and "メールアドレスまたはパスワードが違います" in response.get_data(as_text=True)


def test_unusable_sessions_are_purged(app: Flask, make_user: Callable[..., Any],
                                      login: Callable[..., FlaskClient]) -> None:
    from indexer.accounts import purge_web_sessions

    store = get_library(app).store
    with time_machine.travel("2026-11-23 09:00 +0000", tick=False) as clock:
        app.test_client().get("/login")  # an anonymous session: only a CSRF token
        active = login(make_user("editor"))
        logged_out = login(make_user("citizen"))
        logged_out.post("/logout", data={"csrf_token": logged_out.get("/account").get_data(as_text=True)
                                         .split('name="csrf_token" value="')[1].split('"')[0]})
        with store.session(readonly=True) as db:
            before = len(db.scalars(select(WebSessionRow)).all())
        clock.shift(timedelta(hours=2))
        assert active.get("/account").status_code == 302  # idle past 30 min: unusable, but kept a while
        assert purge_web_sessions(store) >= 2  # the anonymous ones (the login pages' CSRF sessions)
        clock.shift(timedelta(days=31))
        purge_web_sessions(store)
        with store.session(readonly=True) as db:
            assert db.scalars(select(WebSessionRow)).all() == []
        assert before >= 4
