"""Registration, login and logout, one's own account, and the admin's account pages (invite, role, scope)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from indexer.store import AuditRow, UserRow
from search_app import get_library
from search_app.auth.policy import may_edit

PASSWORD = "みなと市の図書館は駅の北口"


def test_citizen_registration_logs_in(app: Flask, csrf_token: Any) -> None:
    client = app.test_client()
    token = csrf_token(client, "/register")
    response = client.post("/register", data={"csrf_token": token, "email": "Ｈａｎａｋｏ@Example.jp",
                                              "display_name": "港 花子", "password": PASSWORD,
                                              "password_confirm": PASSWORD})
    assert response.status_code == 302
    page = client.get("/account").get_data(as_text=True)
    assert "港 花子" in page and "hanako@example.jp" in page and "市民" in page
    # The header now offers the account and logout instead of the login link.
    home = client.get("/").get_data(as_text=True)
    assert "ログアウト" in home and 'href="/login"' not in home


def test_registration_errors_are_in_japanese_and_keep_input(app: Flask, csrf_token: Any,
                                                             make_user: Callable[..., Any]) -> None:
    make_user("citizen", email="taken@example.jp")
    client = app.test_client()
    token = csrf_token(client, "/register")
    response = client.post("/register", data={"csrf_token": token, "email": "taken@example.jp",
                                              "display_name": "<b>太郎</b>", "password": "password",
                                              "password_confirm": "password"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "12文字以上" in html and "推測されやすい" in html
    assert 'value="&lt;b&gt;太郎&lt;/b&gt;"' in html
    token = csrf_token(client, "/register")
    response = client.post("/register", data={"csrf_token": token, "email": "TAKEN@example.jp",
                                              "display_name": "太郎", "password": PASSWORD,
                                              "password_confirm": PASSWORD})
    assert response.status_code == 400 and "すでに登録されています" in response.get_data(as_text=True)


def test_login_redirects_only_within_the_site(app: Flask, make_user: Callable[..., Any], csrf_token: Any) -> None:
    user = make_user("editor")
    for target, expected in [("/admin/zero-results", "/admin/zero-results"), ("//evil.example/x", "/"),
                             ("https://evil.example/", "/"), ("/\\evil.example", "/")]:
        client = app.test_client()
        token = csrf_token(client, "/login")
        response = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token,
                                               "next": target})
        assert response.headers["Location"] == expected, target


def test_login_failures_and_successes_are_audited(app: Flask, make_user: Callable[..., Any],
                                                  csrf_token: Any) -> None:
    user = make_user("citizen")
    client = app.test_client()
    token = csrf_token(client, "/login")
    client.post("/login", data={"email": user.email, "password": "違う合言葉ですけれども", "csrf_token": token})
    client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token})
    with get_library(app).store.session(readonly=True) as db:
        events = [(e.action, e.outcome) for e in db.scalars(select(AuditRow).order_by(AuditRow.id))]
    assert events[-2:] == [("login.failed", "failed"), ("login", "ok")]
    # No password, in any form, in the audit trail.
    with get_library(app).store.session(readonly=True) as db:
        assert all(PASSWORD not in str(e.detail) + e.target for e in db.scalars(select(AuditRow)))


def test_admin_invites_an_editor_who_sets_a_password(app: Flask, client_as: Callable[..., FlaskClient],
                                                     post: Callable[..., Any], csrf_token: Any) -> None:
    admin = client_as("admin")
    response = post(admin, "/admin/users", {"email": "npo@example.jp", "display_name": "NPO みなと",
                                            "role": "editor", "scope_categories": "food, safety.recall"})
    assert response.status_code == 201
    link = re.search(r'value="(http://localhost/invite\?token=[^"]+)"', response.get_data(as_text=True)).group(1)
    with get_library(app).store.session(readonly=True) as db:
        row = db.scalar(select(UserRow).where(UserRow.email == "npo@example.jp"))
        assert row.password_hash is None and row.scope_categories == ["food", "safety.recall"]
        assert row.invite_hash and row.invite_hash not in link  # only the digest is stored
    invited = app.test_client()
    path = link.removeprefix("http://localhost")
    invitation = path.split("token=")[1]
    token = csrf_token(invited, path)
    response = invited.post("/invite", data={"csrf_token": token, "token": invitation, "password": PASSWORD,
                                             "password_confirm": PASSWORD})
    assert response.status_code == 302
    assert invited.get("/admin/zero-results").status_code == 200
    # Single use.
    assert app.test_client().get(path).status_code == 404


def test_admin_input_errors(client_as: Callable[..., FlaskClient], post: Callable[..., Any]) -> None:
    admin = client_as("admin")
    response = post(admin, "/admin/users", {"email": "x", "display_name": "", "role": "king",
                                            "scope_categories": "no.such.category"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    for message in ("メールアドレスを正しく", "表示名を", "役割を選んで", "カテゴリ「no.such.category」はありません"):
        assert message in html


def test_an_admin_cannot_demote_themself(app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient],
                                         post: Callable[..., Any]) -> None:
    admin = make_user("admin")
    client = login(admin)
    response = post(client, f"/admin/users/{admin.id}", {"role": "citizen"})
    assert response.status_code == 400 and "自分自身" in response.get_data(as_text=True)


def test_editor_scopes() -> None:
    class Editor:
        role = "editor"
        scope_categories = ("food",)
        scope_organizations = ("NPO法人みなと子育てネット",)

    assert may_edit(Editor(), {"categories": ["food.allergy"]})
    assert may_edit(Editor(), {"categories": ["childcare"], "organizer": "NPO法人みなと子育てネット"})
    assert not may_edit(Editor(), {"categories": ["safety.recall"], "maker": "株式会社サンプル電機"})
    assert not may_edit(Editor(), {"categories": ["foodbank"]})  # a prefix of a word is not a sub-category

    class Citizen:
        role = "citizen"

    assert not may_edit(Citizen(), {"categories": ["food"]})


def test_the_first_admin_is_invited_from_the_command_line(app: Flask, csrf_token: Any) -> None:
    from click.testing import CliRunner

    from indexer.cli import main

    result = CliRunner().invoke(main, ["users", "invite", "Admin@Example.jp", "--name", "みなと市 管理者",
                                       "--base-url", "http://localhost/"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    link = result.output.strip().splitlines()[-1]
    assert link.startswith("http://localhost/invite?token=")
    client = app.test_client()
    path = link.removeprefix("http://localhost")
    token = csrf_token(client, path)
    assert client.post("/invite", data={"csrf_token": token, "token": path.split("token=")[1], "password": PASSWORD,
                                        "password_confirm": PASSWORD}).status_code == 302
    assert client.get("/admin/users").status_code == 200
    listing = CliRunner().invoke(main, ["users", "list"], catch_exceptions=False).output
    assert "admin@example.jp" in listing and "有効" in listing


def test_the_login_page_warns_when_the_cookie_cannot_be_kept(app: Flask, make_app: Callable[..., Flask]) -> None:
    warning = "この接続ではログインできません"
    assert warning not in app.test_client().get("/login").get_data(as_text=True)  # loopback: fine
    lan = "http://192.168.1.10:8000"
    assert warning in app.test_client().get("/login", base_url=lan).get_data(as_text=True)
    assert warning not in app.test_client().get("/login", base_url="https://library.example.jp").get_data(as_text=True)
    plain_http = make_app(SESSION_COOKIE_SECURE=False)
    assert warning not in plain_http.test_client().get("/login", base_url=lan).get_data(as_text=True)
