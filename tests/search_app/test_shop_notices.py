"""The shop staff's notice form and the admin page for shops and API keys: roles, CSRF, Japanese validation, one
notice per form however often it is sent, and a key shown once."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from indexer.library import Library
from indexer.store import ApiKeyRow, AuditRow, NoticeReportRow, RecordRow, ShopRow
from schemas import JST
from search_app import get_library
from search_app.auth.policy import hash_api_key

JAN = "4901234567894"
NOTICE_ID_FIELD = re.compile(r'name="shop_notice_id" value="([^"]+)"')
NEW_KEY = re.compile(r'class="new-key__value" readonly value="([^"]+)"')


def add_shop(app: Flask, name: str = "みなと商店") -> int:
    with get_library(app).store.session() as db:
        shop = ShopRow(name=name)
        db.add(shop)
        db.flush()
        return shop.id


def form_fields(**fields: str) -> dict[str, str]:
    valid_until = (datetime.now(JST) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
    return {
        "maker": "みなと電機",
        "product": "電気ケトル すぐわく",
        "jan_codes": f"{JAN}\n",
        "model_numbers": "MK-10、MK-11",
        "hazard": "取っ手が割れて熱湯がこぼれるおそれがあります。",
        "action": "使用を中止し、店頭で返品してください。",
        "severity": "high",
        "valid_until": valid_until,
        **fields,
    }


def notice_id_of(client: FlaskClient) -> str:
    match = NOTICE_ID_FIELD.search(client.get("/shop/notices/new").get_data(as_text=True))
    assert match
    return match.group(1)


def shop_records(library: Library) -> list[RecordRow]:
    with library.store.session(readonly=True) as db:
        return list(db.scalars(select(RecordRow).where(RecordRow.source == "shop-notices")))


@pytest.fixture()
def shop_staff(app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient]) -> tuple[int, FlaskClient]:
    shop_id = add_shop(app)
    return shop_id, login(make_user("shop", shop_id=shop_id))


@pytest.mark.parametrize(
    ("role", "new_form", "admin_page"),
    [(None, 302, 302), ("citizen", 403, 403), ("editor", 403, 403), ("shop", 200, 403), ("admin", 200, 200)],
)
def test_who_may_open_the_pages(
    app: Flask, client: FlaskClient, client_as: Callable[..., FlaskClient], role: str | None, new_form: int,
    admin_page: int,
) -> None:
    fields = {"shop_id": add_shop(app)} if role == "shop" else {}
    user = client_as(role, **fields) if role else client
    assert user.get("/shop/notices/new").status_code == new_form
    assert user.get("/shop/notices").status_code == new_form
    assert user.get("/admin/shops").status_code == admin_page
    if role is None:
        assert user.get("/shop/notices/new").headers["Location"].startswith("/login")


def test_a_shop_account_without_a_shop_is_told_so(client_as: Callable[..., FlaskClient]) -> None:
    response = client_as("shop").get("/shop/notices/new")
    assert response.status_code == 403
    assert "店舗が登録されていません" in response.get_data(as_text=True)


def test_the_form_publishes_one_notice_however_often_it_is_sent(
    shop_staff: tuple[int, FlaskClient], library: Library, post: Callable[..., Any]
) -> None:
    shop_id, staff = shop_staff
    notice_id = notice_id_of(staff)
    sent = form_fields(shop_notice_id=notice_id)
    first = post(staff, "/shop/notices/new", sent, form_page="/shop/notices/new")
    assert first.status_code == 302 and first.headers["Location"] == "/shop/notices"
    again = post(staff, "/shop/notices/new", sent, form_page="/shop/notices/new")  # a double click
    assert again.status_code == 302
    [record] = shop_records(library)
    data = record.data
    assert (data["maker"], data["jan_codes"], data["model_numbers"]) == ("みなと電機", [JAN], ["MK-10", "MK-11"])
    assert (data["reported_by"], data["urgent"], data["severity"]) == (["みなと商店"], True, "high")
    assert datetime.fromisoformat(data["valid_until"]).utcoffset() == timedelta(hours=9)  # typed in Japan time
    page = staff.get("/shop/notices").get_data(as_text=True)
    assert f"/records/{record.id}" in page and notice_id in page and "公開中" in page
    with library.store.session(readonly=True) as db:
        event = db.scalars(select(AuditRow).where(AuditRow.action == "notice.submit")).one()
        assert event.target == f"notice-report:{shop_id}/{notice_id}" and event.actor.startswith("user:")
    assert "すぐわく" in staff.get("/search", query_string={"q": "すぐわく"}).get_data(as_text=True)
    record_page = staff.get(f"/records/{record.id}").get_data(as_text=True)
    assert re.search(r"<dt>報告した店舗</dt>\s*<dd>\s*(?:<[^>]+>\s*)*みなと商店", record_page), record_page[-3000:]


def test_each_drawn_form_has_its_own_notice_id(shop_staff: tuple[int, FlaskClient]) -> None:
    _, staff = shop_staff
    assert notice_id_of(staff) != notice_id_of(staff)


def test_errors_are_listed_in_japanese_and_the_input_is_kept(
    shop_staff: tuple[int, FlaskClient], library: Library, post: Callable[..., Any]
) -> None:
    _, staff = shop_staff
    response = post(staff, "/shop/notices/new", form_fields(maker="", jan_codes="4901234567890", hazard=""),
                    form_page="/shop/notices/new")  # fmt: skip
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "メーカー: 空欄にはできません" in html or "メーカー: 必須項目です" in html
    assert "JANコード（1 つ目）: JAN コードのチェックディジットが正しくありません" in html
    assert "危険の内容: 必須項目です" in html
    assert "電気ケトル すぐわく" in html  # what was typed is still there
    assert shop_records(library) == []


def test_the_form_needs_its_csrf_token(shop_staff: tuple[int, FlaskClient], library: Library) -> None:
    _, staff = shop_staff
    response = staff.post("/shop/notices/new", data=form_fields(shop_notice_id="form-x"))
    assert response.status_code == 400
    assert shop_records(library) == []


def test_staff_retract_their_own_shops_notices_only(
    app: Flask, shop_staff: tuple[int, FlaskClient], library: Library, make_user: Callable[..., Any],
    login: Callable[..., FlaskClient], post: Callable[..., Any],
) -> None:
    _, staff = shop_staff
    post(staff, "/shop/notices/new", form_fields(shop_notice_id="form-1"), form_page="/shop/notices/new")
    other = login(make_user("shop", shop_id=add_shop(app, "北口ストア")))
    assert post(other, "/shop/notices/form-1/retract", form_page="/shop/notices").status_code == 404
    assert "form-1" not in other.get("/shop/notices").get_data(as_text=True)
    assert shop_records(library)[0].status == "published"
    assert post(staff, "/shop/notices/form-1/retract", form_page="/shop/notices").status_code == 302
    assert shop_records(library)[0].status == "retracted"
    assert "取り下げ済み" in staff.get("/shop/notices").get_data(as_text=True)


def test_an_admin_sends_for_a_chosen_shop(
    app: Flask, client_as: Callable[..., FlaskClient], library: Library, post: Callable[..., Any]
) -> None:
    shop_id = add_shop(app, "駅前店")
    admin = client_as("admin")
    assert "駅前店" in admin.get("/shop/notices/new").get_data(as_text=True)
    missing = post(admin, "/shop/notices/new", form_fields(), form_page="/shop/notices/new")
    assert missing.status_code == 400 and not shop_records(library)
    sent = post(admin, "/shop/notices/new", form_fields(shop_id=str(shop_id)), form_page="/shop/notices/new")
    assert sent.status_code == 302
    assert shop_records(library)[0].data["reported_by"] == ["駅前店"]
    assert "駅前店" in admin.get("/shop/notices").get_data(as_text=True)


def test_admins_create_shops_and_a_new_key_is_shown_once(
    client: FlaskClient, client_as: Callable[..., FlaskClient], app: Flask, post: Callable[..., Any]
) -> None:
    admin = client_as("admin")
    created = post(admin, "/admin/shops", {"name": "みなと商店"}, form_page="/admin/shops")
    assert created.status_code == 302
    with get_library(app).store.session(readonly=True) as db:
        shop_id = db.scalar(select(ShopRow.id).where(ShopRow.name == "みなと商店"))
    assert post(admin, "/admin/shops", {"name": "みなと商店"}, form_page="/admin/shops").status_code == 400
    issued = post(admin, f"/admin/shops/{shop_id}/keys", {"label": "レジ"}, form_page="/admin/shops")
    assert issued.status_code == 201 and issued.headers["Cache-Control"] == "no-store"
    key = NEW_KEY.search(issued.get_data(as_text=True)).group(1)
    with get_library(app).store.session(readonly=True) as db:
        row = db.scalars(select(ApiKeyRow).where(ApiKeyRow.shop_id == shop_id)).one()
        events = list(db.scalars(select(AuditRow).where(AuditRow.action.in_(("shop.create", "api_key.issue")))))
    assert row.key_hash == hash_api_key(key) and row.label == "レジ"
    assert [e.action for e in events] == ["shop.create", "api_key.issue"]
    assert all(key not in str(e.detail) and key not in e.target for e in events)
    listing = admin.get("/admin/shops").get_data(as_text=True)
    assert key not in listing and f"{row.prefix}…" in listing and "まだ使われていません" in listing
    # The key works, shows as used, and stops working once revoked.
    assert client.get("/api/v1/notices/none", headers={"Authorization": f"Bearer {key}"}).status_code == 404
    assert "まだ使われていません" not in admin.get("/admin/shops").get_data(as_text=True)
    assert post(admin, f"/admin/keys/{row.id}/revoke", form_page="/admin/shops").status_code == 302
    assert "無効（" in admin.get("/admin/shops").get_data(as_text=True)
    assert client.get("/api/v1/notices/none", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_the_admin_pages_need_csrf_and_the_admin_role(
    app: Flask, client_as: Callable[..., FlaskClient], post: Callable[..., Any]
) -> None:
    shop_id = add_shop(app)
    admin = client_as("admin")
    assert admin.post("/admin/shops", data={"name": "偽の店"}).status_code == 400
    assert admin.post(f"/admin/shops/{shop_id}/keys", data={"label": "x"}).status_code == 400
    staff = client_as("shop", shop_id=shop_id)
    assert post(staff, f"/admin/shops/{shop_id}/keys", {"label": "x"}, form_page="/shop/notices").status_code == 403
    with get_library(app).store.session(readonly=True) as db:
        assert db.scalars(select(ApiKeyRow)).all() == []
        assert db.scalar(select(ShopRow.id).where(ShopRow.name == "偽の店")) is None
        assert db.scalars(select(NoticeReportRow)).all() == []
