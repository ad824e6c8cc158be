"""T09: the authorization matrix, generated from the route table, so a new route cannot be forgotten.

Every route × method is called as every kind of caller: anonymous, a citizen, an editor scoped to one category, an
unscoped editor, a shop's staff, an admin, and a shop's API key. Whatever the route's declared policy refuses must
be refused (302 to the login form for an anonymous page view, 400 for a form without a token, else 401/403/404),
never answered 2xx; whatever it allows must not be refused for want of rights. GETs must not change stored state
(T20), except the logs that reading is meant to write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.routing import IntegerConverter, Rule

from indexer.store import ShopRow
from indexer.store.models import Base
from search_app import get_library
from search_app.auth.policy import PUBLIC, SHOP_KEY, issue_api_key, policy_of

# Tables that a read legitimately writes: the session a form needs, the audit trail of refusals, the search log.
LOG_TABLES = {"web_sessions", "audit_log", "search_log", "api_keys"}
REFUSED = {302, 400, 401, 403, 404, 405}
RECORD_ID = "demo-notice-001"
SAMPLE_VALUES = {"record_id": RECORD_ID, "field": "title", "filename": "app.css"}


def sample_url(app: Flask, rule: Rule) -> str:
    values: dict[str, Any] = {}
    for name in sorted(rule.arguments):
        converter = rule._converters.get(name)
        values[name] = 1 if isinstance(converter, IntegerConverter) else SAMPLE_VALUES.get(name, "x")
    return app.url_map.bind("localhost").build(rule.endpoint, values)


def routes(app: Flask) -> Iterator[tuple[Rule, str]]:
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method


def state_fingerprint(app: Flask) -> dict[str, int]:
    library = get_library(app)
    with library.store.session(readonly=True) as db:
        return {
            table.name: db.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
            if table.name not in LOG_TABLES
        } | {"record_revisions": db.scalar(select(func.sum(Base.metadata.tables["records"].c.revision))) or 0}


@pytest.fixture()
def callers(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient]
) -> dict[str, tuple[FlaskClient, dict[str, str], str | None]]:
    """caller name → (client, extra headers, role or None)."""
    library = get_library(app)
    with library.store.session() as db:
        shop = ShopRow(name="みなと商店", disabled=False)
        db.add(shop)
        db.flush()
        _, key = issue_api_key(db, shop.id, label="matrix")
        shop_id = shop.id
    # The admin goes last: its calls with sample ids revoke keys and end sessions that others still need.
    return {
        "anonymous": (app.test_client(), {}, None),
        "shop-key": (app.test_client(), {"Authorization": f"Bearer {key}"}, SHOP_KEY),
        "citizen": (login(make_user("citizen")), {}, "citizen"),
        # Scoped to the sample record's category: the matrix checks roles; scope refusals are probed below.
        "editor-scoped": (login(make_user("editor", scope_categories=["safety"])), {}, "editor"),
        "editor": (login(make_user("editor")), {}, "editor"),
        "shop": (login(make_user("shop", shop_id=shop_id)), {}, "shop"),
        "admin": (login(make_user("admin")), {}, "admin"),
    }


def test_every_route_declares_a_policy(app: Flask) -> None:
    undeclared = [rule.endpoint for rule in app.url_map.iter_rules() if policy_of(app, rule.endpoint) is None]
    assert undeclared == []


def test_a_route_without_a_policy_is_refused(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    assert app.test_client().get("/forgotten").status_code == 403


def _token(client: FlaskClient, role: str | None) -> str:
    page = "/account" if role and role != SHOP_KEY else "/login"
    html = client.get(page).get_data(as_text=True)
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def test_authorization_matrix(app: Flask, callers: dict[str, tuple[FlaskClient, dict[str, str], str | None]]) -> None:
    problems: list[str] = []
    checked = 0
    for caller, (client, headers, role) in callers.items():
        token = _token(client, role) if role != SHOP_KEY else None
        for rule, method in routes(app):
            if rule.endpoint in ("auth.logout",):
                continue  # would end the caller's own session mid-matrix; covered in test_sessions
            policy = policy_of(app, rule.endpoint) or frozenset()
            allowed = PUBLIC in policy or (role in policy if role else False)
            url = sample_url(app, rule)
            data = {"csrf_token": token} if token and method != "GET" else None
            before = state_fingerprint(app) if method == "GET" else None
            response = client.open(url, method=method, headers=headers, data=data)
            status = response.status_code
            response.close()
            checked += 1
            where = f"{caller} {method} {url} ({rule.endpoint}) → {status}"
            if not allowed and status not in REFUSED:
                problems.append("not refused: " + where)
            if not allowed and 200 <= status < 300:
                problems.append("2xx to a refused caller: " + where)
            if allowed and status in (401, 403):
                problems.append("refused although allowed: " + where)
            if before is not None and state_fingerprint(app) != before:
                problems.append("a GET changed stored state: " + where)
    assert checked > 50
    assert problems == [], "\n".join(problems)


def test_refusals_are_audited(app: Flask, callers: dict[str, tuple[FlaskClient, dict[str, str], str | None]]) -> None:
    from indexer.store import AuditRow

    client, _, _ = callers["citizen"]
    assert client.get("/admin/users").status_code == 403
    with get_library(app).store.session(readonly=True) as db:
        event = db.scalars(select(AuditRow).order_by(AuditRow.id.desc())).first()
    assert event is not None
    assert (event.action, event.outcome, event.target) == ("access.denied", "denied", "GET /admin/users")
    assert event.actor.startswith("user:")


def test_an_editor_outside_their_scope_is_refused_on_every_record_route(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient]
) -> None:
    """IDOR probe: an editor scoped to food cannot change a safety notice, on any route that names a record
    (reading its history stays open to every editor)."""
    client = login(make_user("editor", scope_categories=["food"]))
    token = _token(client, "editor")
    probed = 0
    for rule, method in routes(app):
        policy = policy_of(app, rule.endpoint) or frozenset()
        if "record_id" not in rule.arguments or PUBLIC in policy or "editor" not in policy or method == "GET":
            continue
        if rule.endpoint.startswith("contributions."):
            continue  # suggesting an edit is open to every account, scope or not
        response = client.open(sample_url(app, rule), method=method, data={"csrf_token": token})
        response.close()
        assert response.status_code in (403, 404), (rule.endpoint, method, response.status_code)
        probed += 1
    if probed == 0:
        pytest.skip("no editor route names a record yet")


def test_a_shop_reaches_no_other_shops_notice_on_any_route(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient]
) -> None:
    """IDOR probe, generated from the route table: every route that names a shop's notice, called by shop Y (with
    its API key, or its staff logged in) on shop X's notice, is refused and changes nothing."""
    library = get_library(app)
    keys, staff = {}, {}
    with library.store.session() as db:
        for name in ("X", "Y"):
            shop = ShopRow(name=f"店舗{name}")
            db.add(shop)
            db.flush()
            keys[name] = issue_api_key(db, shop.id, label="idor")[1]
            staff[name] = shop.id
    client = app.test_client()
    body = {"shop_notice_id": "x-own", "maker": "みなと電機", "product": "電気ケトル すぐわく",
            "jan_codes": ["4901234567894"], "hazard": "取っ手が割れるおそれ", "action": "使用を中止してください",
            "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat()}  # fmt: skip
    created = client.post("/api/v1/notices", json=body, headers={"Authorization": f"Bearer {keys['X']}"})
    assert created.status_code == 201, created.get_data(as_text=True)
    shop_y_staff = login(make_user("shop", shop_id=staff["Y"]))
    token = _token(shop_y_staff, "shop")
    probed = 0
    for rule, method in routes(app):
        if "shop_notice_id" not in rule.arguments:
            continue
        url = app.url_map.bind("localhost").build(rule.endpoint, {"shop_notice_id": "x-own"})
        before = state_fingerprint(app)
        policy = policy_of(app, rule.endpoint) or frozenset()
        if SHOP_KEY in policy:
            response = client.open(url, method=method, headers={"Authorization": f"Bearer {keys['Y']}"},
                                   json={"severity": "low"} if method == "PATCH" else None)  # fmt: skip
        else:
            response = shop_y_staff.open(url, method=method, data={"csrf_token": token})
        response.close()
        assert response.status_code in (403, 404), (rule.endpoint, method, response.status_code)
        assert state_fingerprint(app) == before, (rule.endpoint, method)
        probed += 1
    assert probed >= 4
    mine = client.get("/api/v1/notices/x-own", headers={"Authorization": f"Bearer {keys['X']}"}).get_json()
    assert mine["status"] == "active" and mine == created.get_json()
