"""The editing pages: who may use them, the edit form's round trip, optimistic locking (409), history, diffs,
revert, retract/restore, verify and settling a changed source; and the pure form/diff helpers."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from indexer.editing import edit_record
from indexer.library import Library
from indexer.search import Query
from indexer.store import AuditRow, RecordOverrideRow
from search_app.editing import Segment, changes_from_form, diff_text, form_fields, form_values

RECORD = "demo-notice-001"
EDIT = f"/records/{RECORD}/edit"
ROUTES = [
    ("GET", EDIT),
    ("POST", EDIT),
    ("GET", f"/records/{RECORD}/history"),
    ("GET", f"/records/{RECORD}/diff?from=1&to=1"),
    ("POST", f"/records/{RECORD}/revert/1"),
    ("POST", f"/records/{RECORD}/retract"),
    ("POST", f"/records/{RECORD}/restore"),
    ("POST", f"/records/{RECORD}/verify"),
    ("POST", f"/records/{RECORD}/overrides/place/resolve"),
]
FIELD_INPUT = re.compile(r'<(input|textarea|select)[^>]*name="([a-z_]+)"')


def form_data(client: FlaskClient, path: str = EDIT) -> dict[str, Any]:
    """What a browser would submit from the edit form as served: every field as shown, and the hidden ones."""
    html = client.get(path).get_data(as_text=True)
    data: dict[str, Any] = {}
    for match in re.finditer(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', html):
        data[match.group(1)] = unescape(match.group(2))
    for match in re.finditer(r'<input type="(?:text|datetime-local|number)" id="field-[a-z_]+" name="([a-z_]+)"[^>]*value="([^"]*)"', html):
        data[match.group(1)] = unescape(match.group(2))
    for match in re.finditer(r'<textarea id="field-[a-z_]+" name="([a-z_]+)"[^>]*>([^<]*)</textarea>', html, re.DOTALL):
        data[match.group(1)] = unescape(match.group(2))
    for match in re.finditer(r'<select id="field-([a-z_]+)".*?</select>', html, re.DOTALL):
        selected = re.search(r'<option value="([^"]*)" selected>', match.group(0))
        data[match.group(1)] = selected.group(1) if selected else ""
    for match in re.finditer(r'<input type="checkbox" id="field-[a-z_]+" name="([a-z_]+)" value="1" checked', html):
        data[match.group(1)] = "1"
    return data


def audit_actions(library: Library) -> list[tuple[str, str, str]]:
    with library.store.session(readonly=True) as session:
        rows = session.scalars(select(AuditRow).where(AuditRow.action.startswith("record.")).order_by(AuditRow.id))
        return [(row.action, row.target, row.outcome) for row in rows]


# --- who may use the pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_anonymous_readers_are_sent_to_log_in_or_refused(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method)
    if method == "GET":
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    else:
        assert response.status_code in (400, 401)  # no session: CSRF or the login check refuses it first


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_citizens_are_refused(
    client_as: Callable[..., FlaskClient], post: Callable[..., Any], method: str, path: str
) -> None:
    client = client_as("citizen")
    response = client.get(path) if method == "GET" else post(client, path, {"base_revision": "1"})
    assert response.status_code == 403


def test_a_shop_account_is_refused(app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient],
                                   post: Callable[..., Any]) -> None:
    from indexer.store import ShopRow
    from search_app import get_library

    with get_library(app).store.session() as session:
        shop = ShopRow(name="みなと薬局")
        session.add(shop)
        session.flush()
        shop_id = shop.id
    client = login(make_user("shop", shop_id=shop_id))
    assert client.get(EDIT).status_code == 403
    assert post(client, f"/records/{RECORD}/retract", {"base_revision": "1", "summary": "x"}).status_code == 403


def test_a_scoped_editor_outside_the_scope_is_refused_and_audited(
    client_as: Callable[..., FlaskClient], post: Callable[..., Any], library: Library
) -> None:
    client = client_as("editor", scope_categories=["food"], scope_organizations=["みなと市防災課"])
    assert client.get(EDIT).status_code == 403
    response = post(client, f"/records/{RECORD}/retract", {"base_revision": "1", "summary": "x"})
    assert response.status_code == 403
    assert library.get_record(RECORD).status == "published"  # type: ignore[union-attr]
    assert ("record.edit", f"record:{RECORD}", "denied") in audit_actions(library)
    assert ("record.retract", f"record:{RECORD}", "denied") in audit_actions(library)
    # History is for every editor; the buttons that change the record are not shown outside the scope.
    history = client.get(f"/records/{RECORD}/history")
    assert history.status_code == 200 and "この版に戻す" not in history.get_data(as_text=True)


def test_a_scoped_editor_cannot_move_a_record_out_of_their_scope(
    client_as: Callable[..., FlaskClient], library: Library
) -> None:
    client = client_as("editor", scope_categories=["safety"])
    data = form_data(client)
    data.update(categories="food.allergy", summary="分類を食品に変更")
    response = client.post(EDIT, data=data)
    assert response.status_code == 403
    assert "担当範囲の外" in response.get_data(as_text=True)
    row = library.get_record(RECORD)
    assert row is not None and row.revision == 1 and row.data["categories"] == ["safety.recall", "safety.product"]
    assert ("record.edit", f"record:{RECORD}", "denied") in audit_actions(library)
    # Within the scope the same form saves.
    data.update(categories="safety.recall", summary="分類を回収だけに")
    assert client.post(EDIT, data=data).status_code == 302
    assert library.get_record(RECORD).data["categories"] == ["safety.recall"]  # type: ignore[union-attr]


def test_a_scoped_editor_cannot_revert_to_a_revision_outside_their_scope(
    client_as: Callable[..., FlaskClient], post: Callable[..., Any], library: Library
) -> None:
    row = library.get_record(RECORD)
    assert row is not None
    edit_record(library, RECORD, {"categories": ["safety.recall"]}, editor_id=None, author="test", summary="s",
                expected_revision=row.revision)  # fmt: skip
    edit_record(library, RECORD, {"categories": ["food.allergy"]}, editor_id=None, author="test", summary="s",
                expected_revision=row.revision + 1)  # fmt: skip
    # Revision 3 is in the food scope; revision 2 is safety: a food editor may not bring it back.
    client = client_as("editor", scope_categories=["food"])
    response = post(client, f"/records/{RECORD}/revert/2", {"base_revision": "3", "summary": "戻す"})
    assert response.status_code == 403
    assert library.get_record(RECORD).revision == 3  # type: ignore[union-attr]
    assert ("record.revert", f"record:{RECORD}", "denied") in audit_actions(library)


def test_an_editor_in_scope_and_an_admin_may_edit(client_as: Callable[..., FlaskClient]) -> None:
    for client in (client_as("editor", scope_categories=["safety"]), client_as("editor"), client_as("admin")):
        assert client.get(EDIT).status_code == 200
        assert client.get(f"/records/{RECORD}/history").status_code == 200
        assert client.get(f"/records/{RECORD}/diff?from=1&to=1").status_code == 200


def test_a_post_without_csrf_token_is_refused(client_as: Callable[..., FlaskClient], library: Library) -> None:
    client = client_as("editor")
    data = form_data(client)
    data.pop("csrf_token")
    data.update(title="書き換え", summary="CSRF なし")
    assert client.post(EDIT, data=data).status_code == 400
    assert client.post(f"/records/{RECORD}/retract", data={"base_revision": "1", "summary": "x"}).status_code == 400
    row = library.get_record(RECORD)
    assert row is not None and row.revision == 1 and row.status == "published"


# --- the edit form --------------------------------------------------------------------------------------------


def test_the_form_shows_the_kinds_fields_with_japanese_labels(client_as: Callable[..., FlaskClient]) -> None:
    html = client_as("editor").get(EDIT).get_data(as_text=True)
    names = {match.group(2) for match in FIELD_INPUT.finditer(html)}
    assert {"title", "body", "maker", "product", "jan_codes", "hazard", "action", "severity", "urgent", "valid_until",
            "summary", "base_revision", "csrf_token"} <= names
    assert not names & {"id", "kind", "source", "external_id", "status"}
    assert ">メーカー" in html and ">危険の内容" in html and ">掲載期限" in html
    assert 'type="datetime-local" id="field-valid_until" name="valid_until"' in html
    assert 'value="2027-12-31T23:59:59"' in html  # JST, seconds kept
    assert "4501234001017\n4501234001024</textarea>" in html  # one list item per line
    assert '<option value="critical" selected>重大</option>' in html


def test_saving_the_form_makes_a_revision_shown_on_the_record_page(
    client_as: Callable[..., FlaskClient], library: Library
) -> None:
    client = client_as("editor", display_name="港の編集者")
    data = form_data(client)
    data.update(product="モバイルバッテリー ポケットチャージ10000（白・黒）", summary="色の表記を追加")
    response = client.post(EDIT, data=data)
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/records/{RECORD}")

    row = library.get_record(RECORD)
    assert row is not None and row.revision == 2
    assert row.data["product"] == "モバイルバッテリー ポケットチャージ10000（白・黒）"
    # Saving unchanged fields rewrote nothing: the valid_until seconds and the lists are as they were.
    assert row.data["valid_until"] == "2027-12-31T23:59:59+09:00"
    assert row.data["jan_codes"] == ["4501234001017", "4501234001024"]
    with library.store.session(readonly=True) as session:
        assert set(session.scalars(select(RecordOverrideRow.field).where(RecordOverrideRow.record_id == RECORD))) == {"product"}
    page = client.get(f"/records/{RECORD}").get_data(as_text=True)
    assert "保存しました（第2版）" in page and "（白・黒）" in page and "第2版" in page
    assert [hit.id for hit in library.search(Query(text="白・黒 ポケットチャージ")).hits][:1] == [RECORD]
    history = client.get(f"/records/{RECORD}/history").get_data(as_text=True)
    assert "色の表記を追加" in history and "港の編集者" in history and "日本時間" in history
    assert audit_actions(library)[-1] == ("record.edit", f"record:{RECORD}", "ok")


def test_validation_errors_are_japanese_beside_the_fields_and_the_input_is_kept(
    client_as: Callable[..., FlaskClient], library: Library
) -> None:
    client = client_as("editor")
    data = form_data(client)
    data.update(maker="", jan_codes="4501234001017\n1234567890123", url="javascript:alert(1)", summary="")
    response = client.post(EDIT, data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="error-maker">空欄にはできません' in html
    assert 'id="error-jan_codes">JAN コードのチェックディジットが正しくありません' in html
    assert 'id="error-url">' in html and "http または https" in html
    assert "1234567890123</textarea>" in html  # what was typed is still there
    assert 'value="javascript:alert(1)"' in html
    assert library.get_record(RECORD).revision == 1  # type: ignore[union-attr]

    data.update(maker="株式会社サンプル電機", jan_codes="4501234001017", url="", summary="")
    response = client.post(EDIT, data=data)
    assert response.status_code == 422 and 'id="error-summary">変更の要約を入力してください' in response.get_data(as_text=True)


def test_two_editors_saving_the_same_revision_one_wins_the_other_gets_the_conflict_page(
    client_as: Callable[..., FlaskClient], library: Library
) -> None:
    first, second = client_as("editor", display_name="一人目"), client_as("editor", display_name="二人目")
    first_form, second_form = form_data(first), form_data(second)  # both read revision 1
    first_form.update(hazard="電池セルの不具合で発熱し、発火するおそれがあります。", summary="危険の内容を簡潔に")
    second_form.update(
        hazard="内部の電池セルに不具合があり、充電中に発煙するおそれがあります。",
        contact="回収受付窓口 0120-000-101",
        summary="窓口の表記を統一",
    )

    assert first.post(EDIT, data=first_form).status_code == 302
    response = second.post(EDIT, data=second_form)
    html = unescape(response.get_data(as_text=True))

    assert response.status_code == 409
    assert "ほかの人が先に保存しました" in html and "ほかの人（一人目）が第2版を保存しました" in html
    assert "ほかの人の変更（第1版 → 第2版）" in html and "あなたの変更（第1版 → あなたの入力）" in html
    assert "<ins>" in html and "<del>" in html
    assert "両方が変更した項目" in html and "危険の内容" in html
    # Nothing is lost: both texts are on the page, the form holds the second editor's, based on revision 2.
    assert "電池セルの不具合で発熱し" in html
    assert ">内部の電池セルに不具合があり、充電中に発煙するおそれがあります。</textarea>" in html
    assert ">回収受付窓口 0120-000-101</textarea>" in html
    assert 'name="base_revision" value="2"' in html and 'value="窓口の表記を統一"' in html
    assert library.get_record(RECORD).revision == 2  # type: ignore[union-attr]
    assert ("record.edit", f"record:{RECORD}", "failed") in audit_actions(library)

    # Saving the conflict form as it is now succeeds on top of revision 2.
    retry = form_data_from_html(html)
    assert second.post(EDIT, data=retry).status_code == 302
    row = library.get_record(RECORD)
    assert row is not None and row.revision == 3
    assert row.data["contact"] == "回収受付窓口 0120-000-101"
    assert row.data["hazard"].startswith("内部の電池セルに不具合があり")


def form_data_from_html(html: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    form = html[html.index('<form method="post" action="/records/'):]
    for match in re.finditer(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', form):
        data.setdefault(match.group(1), match.group(2))
    for match in re.finditer(r'<input type="(?:text|datetime-local|number)" id="field-[a-z_]+" name="([a-z_]+)"[^>]*value="([^"]*)"', form):
        data[match.group(1)] = match.group(2)
    for match in re.finditer(r'<textarea id="field-[a-z_]+" name="([a-z_]+)"[^>]*>([^<]*)</textarea>', form, re.DOTALL):
        data[match.group(1)] = match.group(2)
    for match in re.finditer(r'<select id="field-([a-z_]+)".*?</select>', form, re.DOTALL):
        selected = re.search(r'<option value="([^"]*)" selected>', match.group(0))
        data[match.group(1)] = selected.group(1) if selected else ""
    for match in re.finditer(r'<input type="checkbox" id="field-[a-z_]+" name="([a-z_]+)" value="1" checked', form):
        data[match.group(1)] = "1"
    return data


# --- history, diff, actions -----------------------------------------------------------------------------------


def test_the_diff_marks_changed_characters_and_escapes_the_text(
    client_as: Callable[..., FlaskClient], library: Library
) -> None:
    edit_record(
        library, RECORD, {"action": "直ちに使用を中止し、<b>販売店</b>へご連絡ください。"},
        editor_id=None, author="tests", summary="対応を短く", expected_revision=1,
    )
    html = client_as("editor").get(f"/records/{RECORD}/diff?from=1&to=2").get_data(as_text=True)
    assert "第1版と第2版の差分" in html and "対応のお願い" in html
    assert "<ins>&lt;b&gt;販売店&lt;/b&gt;へご連絡</ins>" in html or "&lt;b&gt;販売店&lt;/b&gt;" in html
    assert "<b>販売店</b>" not in html
    assert "<del>" in html and "<ins>" in html
    client = client_as("editor")
    assert client.get(f"/records/{RECORD}/diff?from=1&to=9").status_code == 404
    assert client.get(f"/records/{RECORD}/diff?from=x").status_code == 200  # an unreadable number: the defaults
    assert client.get(f"/records/{RECORD}/diff?to=1").status_code == 200  # revision 1 against itself
    assert client.get("/records/no-such-record/history").status_code == 404


def test_revert_retract_restore_and_verify_from_the_history_page(
    client_as: Callable[..., FlaskClient], post: Callable[..., Any], library: Library
) -> None:
    client = client_as("editor")
    history = f"/records/{RECORD}/history"
    edit_record(library, RECORD, {"title": "誤ったタイトル"}, editor_id=None, author="tests", summary="誤り",
                expected_revision=1)

    response = post(client, f"/records/{RECORD}/revert/1", {"base_revision": "2"}, form_page=history)
    assert response.status_code == 302
    row = library.get_record(RECORD)
    assert row is not None and row.revision == 3 and row.title.startswith("モバイルバッテリー")

    stale = post(client, f"/records/{RECORD}/retract", {"base_revision": "2", "summary": "重複"}, form_page=history)
    assert stale.status_code == 409 and "第3版" in stale.get_data(as_text=True)
    no_reason = post(client, f"/records/{RECORD}/retract", {"base_revision": "3", "summary": ""}, form_page=history)
    assert no_reason.status_code == 422 and "取り下げの理由" in no_reason.get_data(as_text=True)

    retracted = post(client, f"/records/{RECORD}/retract", {"base_revision": "3", "summary": "重複した記録"},
                     form_page=history)
    assert retracted.status_code == 302 and retracted.headers["Location"].endswith(history)
    assert client.get(f"/records/{RECORD}").status_code == 404
    assert RECORD not in [hit.id for hit in library.search(Query(text="ポケットチャージ")).hits]
    # A retracted record's history is not public.
    assert client.application.test_client().get(history).status_code == 302

    assert post(client, f"/records/{RECORD}/restore", {"base_revision": "4"}, form_page=history).status_code == 302
    assert RECORD in [hit.id for hit in library.search(Query(text="ポケットチャージ")).hits]
    assert post(client, f"/records/{RECORD}/verify", {"base_revision": "5"}, form_page=history).status_code == 302
    row = library.get_record(RECORD)
    assert row is not None and row.revision == 6 and row.data["verified_at"] != "2026-03-02T09:30:00+09:00"
    actions = [action for action, _, outcome in audit_actions(library) if outcome == "ok"]
    assert actions == ["record.revert", "record.retract", "record.restore", "record.verify"]


def test_a_changed_source_is_shown_to_editors_and_resolved(
    app: Flask, client: FlaskClient, client_as: Callable[..., FlaskClient], post: Callable[..., Any],
    library: Library,
) -> None:
    source_record = library.get_record(RECORD).data  # type: ignore[union-attr]
    edit_record(library, RECORD, {"contact": "サンプル電機 窓口 0120-000-101"}, editor_id=None, author="tests",
                summary="窓口", expected_revision=1)
    library.ingest({**source_record, "contact": "サンプル電機 新窓口 0120-000-999"}, author="demo", summary="crawl")
    editor = client_as("editor")

    page = editor.get(f"/records/{RECORD}").get_data(as_text=True)
    assert "出典の内容が修正後に変わりました" in page and "問い合わせ先" in page
    assert f'href="/records/{RECORD}/edit"' in page and f'href="/records/{RECORD}/history"' in page
    public = client.get(f"/records/{RECORD}").get_data(as_text=True)
    assert "出典の内容が修正後に変わりました" not in public and "/edit" not in public

    history = f"/records/{RECORD}/history"
    assert "新窓口 0120-000-999" in editor.get(history).get_data(as_text=True)
    row = library.get_record(RECORD)
    assert row is not None and row.data["contact"] == "サンプル電機 窓口 0120-000-101"
    response = post(editor, f"/records/{RECORD}/overrides/contact/resolve",
                    {"base_revision": str(row.revision), "keep": "0"}, form_page=history)
    assert response.status_code == 302
    assert library.get_record(RECORD).data["contact"] == "サンプル電機 新窓口 0120-000-999"  # type: ignore[union-attr]
    assert "出典の内容が修正後に変わりました" not in editor.get(f"/records/{RECORD}").get_data(as_text=True)


# --- pure helpers ---------------------------------------------------------------------------------------------


def test_diff_text_is_character_level_for_japanese() -> None:
    assert diff_text("会場はみなと公園です", "会場は市民体育館です") == [
        Segment("equal", "会場は"), Segment("delete", "みなと公園"), Segment("insert", "市民体育館"),
        Segment("equal", "です"),
    ]
    long_old = "\n".join(f"{n}行目の本文です。" for n in range(3000))
    long_new = long_old.replace("1500行目の本文", "1500行目の新しい本文")
    segments = diff_text(long_old, long_new)
    assert [s.text for s in segments if s.op != "equal"] == ["新しい"]
    assert "".join(s.text for s in segments if s.op != "insert") == long_old


def test_unchanged_form_text_is_no_change() -> None:
    fields = form_fields("facility")
    data = {"kind": "facility", "title": "公民館", "latitude": 35.0, "opening_hours": None, "tags": ["a", "b"]}
    form = form_values(fields, data)
    changes, _ = changes_from_form(fields, form, data)
    assert changes == {}
    changes, _ = changes_from_form(fields, {**form, "tags": "a\r\nc\r\n\r\n", "latitude": ""}, data)
    assert changes == {"tags": ["a", "c"], "latitude": None}
