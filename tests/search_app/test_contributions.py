"""Contributions and moderation over HTTP: who may do what (T09), CSRF (T20), IDOR probes, and what each person
sees: the contributor their status and the editor's reason, the editor the proposal and its difference."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from indexer import contributions
from indexer.ingest import new_record_id
from indexer.store import AuditRow
from search_app import get_library

RECORD_ID = "demo-program-002"  # 子育てなんでも相談会 (categories childcare)
WORD = "ひまわり子ども食堂"

Post = Callable[..., Any]


def program_form(**fields: str) -> dict[str, str]:
    form = {
        "kind": "program",
        "title": f"{WORD}の開催",
        "body": "毎月第2土曜日に、だれでも参加できる食堂を開いています。",
        "organizer": "ひまわりの会",
        "place": "みなと公民館",
        "starts_at": "2026-12-12 11:30",
        "categories": "childcare",
        "tags": "食堂\n子ども",
    }
    form.update(fields)
    return form


def text_of(response: Any) -> str:
    return response.get_data(as_text=True)


def submit(client: FlaskClient, post: Post, **fields: str) -> Any:
    return post(client, "/contribute", program_form(**fields), form_page="/contribute?kind=program")


def pending_id(app: Flask) -> int:
    items = contributions.pending(get_library(app).store)
    assert items, "nothing pending"
    return items[-1].id


def searched(client: FlaskClient, text: str) -> str:
    return text_of(client.get("/search", query_string={"q": text}))


# --- who may call what --------------------------------------------------------------------------------------------

CONTRIBUTION_PAGES = [
    "/contribute",
    "/contribute?kind=facility",
    f"/records/{RECORD_ID}/suggest",
    "/contributions/mine",
]


@pytest.mark.parametrize("path", CONTRIBUTION_PAGES)
def test_anonymous_is_sent_to_the_login_form(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("role", ["citizen", "editor", "shop", "admin"])
@pytest.mark.parametrize("path", CONTRIBUTION_PAGES)
def test_every_account_may_contribute(client_as: Callable[..., FlaskClient], role: str, path: str) -> None:
    assert client_as(role).get(path).status_code == 200


def moderation_pages(app: Flask) -> list[str]:
    contribution = contributions.submit_record(
        get_library(app).store,
        _citizen_id(app),
        {"kind": "faq", "title": "ゴミの日はいつ？", "body": "火曜日です。"},
    )
    return ["/moderation", f"/moderation/{contribution.id}"]


def _citizen_id(app: Flask) -> int:
    from search_app.auth.accounts import create_user

    with get_library(app).store.session() as db:
        return create_user(db, email="owner@example.jp", display_name="投稿者", role="citizen").id


def test_moderation_is_for_editors_only(
    app: Flask, client: FlaskClient, client_as: Callable[..., FlaskClient], post: Post
) -> None:
    queue, review = moderation_pages(app)
    contribution_id = int(review.rsplit("/", 1)[1])
    for path in (queue, review):
        assert client.get(path).status_code == 302
    for role in ("shop", "citizen"):
        refused = client_as(role)
        for path in (queue, review):
            assert refused.get(path).status_code == 403
    citizen = client_as("citizen")
    for action in ("accept", "reject"):
        response = post(citizen, f"/moderation/{contribution_id}/{action}", {"reason": "理由"})
        assert response.status_code == 403
    for role in ("editor", "admin"):
        editor = client_as(role)
        assert editor.get(queue).status_code == 200
        assert "ゴミの日はいつ？" in text_of(editor.get(review))
    # The citizen's probes were refused and recorded; nothing was decided.
    assert contributions.get(get_library(app).store, contribution_id).status == "pending"  # type: ignore[union-attr]
    with get_library(app).store.session(readonly=True) as db:
        denied = db.scalars(select(AuditRow.target).where(AuditRow.action == "access.denied")).all()
    assert f"GET /moderation/{contribution_id}" in denied


@pytest.mark.parametrize(
    "path",
    [
        "/contribute",
        f"/records/{RECORD_ID}/suggest",
        "/contributions/{id}/withdraw",
        "/moderation/{id}/accept",
        "/moderation/{id}/reject",
    ],
)
def test_a_post_without_its_csrf_token_is_refused(
    app: Flask, client_as: Callable[..., FlaskClient], post: Post, path: str
) -> None:
    citizen = client_as("citizen")
    assert submit(citizen, post).status_code == 303
    contribution_id = pending_id(app)
    client = client_as("editor") if path.startswith("/moderation") else citizen
    response = client.post(path.format(id=contribution_id), data={**program_form(), "reason": "重複"})
    assert response.status_code == 400
    assert "フォームの有効期限が切れた" in text_of(response)
    assert contributions.get(get_library(app).store, contribution_id).status == "pending"  # type: ignore[union-attr]
    assert len(contributions.pending(get_library(app).store)) == 1


# --- contributing -------------------------------------------------------------------------------------------------


def test_the_form_keeps_the_input_and_puts_each_message_beside_its_field(
    client_as: Callable[..., FlaskClient], post: Post
) -> None:
    citizen = client_as("citizen")
    chooser = text_of(citizen.get("/contribute"))
    assert "何についての情報ですか" in chooser and "ウェブページ" not in chooser
    response = submit(citizen, post, title="", organizer="ひまわりの<会>", starts_at="来週の土曜")
    assert response.status_code == 400
    page = text_of(response)
    assert '<span id="title-error" class="form__error">空欄にはできません</span>' in page
    assert '<span id="starts_at-error" class="form__error">日付または日時を ISO 8601 形式で' in page
    assert "タイトル: 空欄にはできません" in page  # the summary on top names the field
    assert 'value="ひまわりの&lt;会&gt;"' in page  # kept, and escaped
    assert 'value="来週の土曜"' in page
    assert "食堂\n子ども</textarea>" in page
    assert '<option value="childcare" selected>' in page
    assert 'aria-invalid="true"' in page


def test_a_contribution_waits_unsearchable_until_an_editor_accepts_it(
    app: Flask, client: FlaskClient, client_as: Callable[..., FlaskClient], post: Post
) -> None:
    citizen = client_as("citizen")
    response = submit(citizen, post, note="公民館の掲示板で見ました")
    assert response.status_code == 303 and response.headers["Location"] == "/contributions/mine"
    mine = text_of(citizen.get("/contributions/mine"))
    assert f"{WORD}の開催" in mine and "確認待ち" in mine
    contribution_id = pending_id(app)
    # The id the record will get: a contribution's record is keyed by the contribution's id.
    record_id = new_record_id(
        {"kind": "program", "source": "contribution", "external_id": str(contribution_id)}
    )
    assert f"/records/{record_id}" not in searched(client, WORD)
    assert client.get(f"/records/{record_id}").status_code == 404

    editor = client_as("editor")
    queue = text_of(editor.get("/moderation"))
    assert f"/moderation/{contribution_id}" in queue and "citizenさん" in queue
    review = text_of(editor.get(f"/moderation/{contribution_id}"))
    assert "公民館の掲示板で見ました" in review and "ひまわりの会" in review
    response = post(
        editor, f"/moderation/{contribution_id}/accept", {}, form_page=f"/moderation/{contribution_id}"
    )
    assert response.status_code == 303

    assert f"/records/{record_id}" in searched(client, WORD)
    decided = contributions.get(get_library(app).store, contribution_id)
    assert decided is not None and decided.status == "accepted" and decided.record_id == record_id
    record_page = text_of(client.get(f"/records/{decided.record_id}"))
    assert "市民投稿" in record_page
    assert "掲載されました" in text_of(citizen.get("/contributions/mine"))
    with get_library(app).store.session(readonly=True) as db:
        event = db.scalars(select(AuditRow).where(AuditRow.action == "contribution.accept")).one()
    assert event.target == f"contribution:{contribution_id}" and event.detail["record"] == decided.record_id
    # A second decision finds it decided.
    again = post(editor, f"/moderation/{contribution_id}/reject", {"reason": "重複"}, form_page="/moderation")
    assert again.status_code == 409 and "すでに処理されています" in text_of(again)


def test_the_contributor_reads_the_rejection_reason_and_nobody_else_does(
    app: Flask, client_as: Callable[..., FlaskClient], post: Post
) -> None:
    citizen, other = client_as("citizen"), client_as("citizen")
    submit(citizen, post)
    contribution_id = pending_id(app)
    editor = client_as("editor")
    refused = post(editor, f"/moderation/{contribution_id}/reject", {"reason": "  "}, form_page="/moderation")
    assert refused.status_code == 400 and "見送る理由を" in text_of(refused)
    reason = "同じ催しがすでに登録されています。<みなと市の記録>をご覧ください。"
    response = post(
        editor, f"/moderation/{contribution_id}/reject", {"reason": reason}, form_page="/moderation"
    )
    assert response.status_code == 303
    mine = text_of(citizen.get("/contributions/mine"))
    assert "見送りになりました" in mine and html.escape(reason, quote=False) in mine
    assert reason not in mine  # escaped, never markup
    assert reason[:10] not in text_of(other.get("/contributions/mine"))
    assert f"{WORD}の開催" not in text_of(other.get("/contributions/mine"))


def test_someone_elses_contribution_cannot_be_withdrawn_or_seen(
    app: Flask, client_as: Callable[..., FlaskClient], post: Post
) -> None:
    owner, other = client_as("citizen"), client_as("citizen")
    submit(owner, post)
    contribution_id = pending_id(app)
    assert (
        post(other, f"/contributions/{contribution_id}/withdraw", form_page="/contributions/mine").status_code
        == 404
    )
    assert post(other, "/contributions/999999/withdraw", form_page="/contributions/mine").status_code == 404
    with get_library(app).store.session(readonly=True) as db:
        probes = db.scalars(
            select(AuditRow.target).where(
                AuditRow.action == "contribution.withdraw", AuditRow.outcome == "denied"
            )
        ).all()
    assert f"contribution:{contribution_id}" in probes
    assert other.get(f"/moderation/{contribution_id}").status_code == 403
    assert contributions.get(get_library(app).store, contribution_id).status == "pending"  # type: ignore[union-attr]
    response = post(owner, f"/contributions/{contribution_id}/withdraw", form_page="/contributions/mine")
    assert response.status_code == 303
    assert "取り下げました" in text_of(owner.get("/contributions/mine"))
    assert contributions.pending(get_library(app).store) == []


def test_an_editor_decides_only_within_their_scope(
    app: Flask, client_as: Callable[..., FlaskClient], post: Post
) -> None:
    submit(client_as("citizen"), post)  # a childcare program
    contribution_id = pending_id(app)
    food_editor = client_as("editor", scope_categories=["food"])
    assert f"/moderation/{contribution_id}" not in text_of(food_editor.get("/moderation"))
    assert food_editor.get(f"/moderation/{contribution_id}").status_code == 403
    response = post(food_editor, f"/moderation/{contribution_id}/accept", form_page="/moderation")
    assert response.status_code == 403
    assert contributions.get(get_library(app).store, contribution_id).status == "pending"  # type: ignore[union-attr]
    childcare_editor = client_as("editor", scope_categories=["childcare"])
    assert f"/moderation/{contribution_id}" in text_of(childcare_editor.get("/moderation"))
    response = post(childcare_editor, f"/moderation/{contribution_id}/accept", form_page="/moderation")
    assert response.status_code == 303


# --- suggested edits ----------------------------------------------------------------------------------------------


def suggest_form(client: FlaskClient, **changes: str) -> dict[str, Any]:
    """The suggest form as the page fills it, with some fields typed over."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text_of(client.get(f"/records/{RECORD_ID}/suggest")), "html.parser")
    form = soup.select_one("form.form[method=post]")
    assert form is not None
    data: dict[str, Any] = {}
    for field in form.select("input, textarea, select"):
        name = field.get("name")
        if not name or name == "csrf_token":
            continue
        if field.name == "textarea":
            data[name] = field.get_text()
        elif field.name == "select":
            data[name] = [option["value"] for option in field.select("option[selected]")]
        elif field.get("type") == "checkbox":
            if field.has_attr("checked"):
                data[name] = field["value"]
        else:
            data[name] = field.get("value", "")
    data.update(changes)
    return data


def test_the_record_page_offers_a_suggestion(client: FlaskClient) -> None:
    assert f'href="/records/{RECORD_ID}/suggest">修正を提案</a>' in text_of(
        client.get(f"/records/{RECORD_ID}")
    )


def test_a_suggested_edit_is_reviewed_as_a_difference_and_accepted_as_a_revision(
    app: Flask, client: FlaskClient, client_as: Callable[..., FlaskClient], post: Post
) -> None:
    citizen = client_as("citizen")
    unchanged = post(
        citizen, f"/records/{RECORD_ID}/suggest", suggest_form(citizen), form_page="/contributions/mine"
    )
    assert unchanged.status_code == 400 and "変更された項目がありません" in text_of(unchanged)
    record = get_library(app).get_record(RECORD_ID)
    assert record is not None
    old_place = record.data["place"]
    new_place = f"{old_place}<b>2階</b>"
    response = post(
        citizen,
        f"/records/{RECORD_ID}/suggest",
        suggest_form(citizen, place=new_place),
        form_page="/contributions/mine",
    )
    assert response.status_code == 303
    contribution_id = pending_id(app)
    assert contributions.get(get_library(app).store, contribution_id).data == {"place": new_place}  # type: ignore[union-attr]

    editor = client_as("editor")
    review = text_of(editor.get(f"/moderation/{contribution_id}"))
    assert "<b>2階</b>" not in review  # the proposal is text, escaped
    assert "<ins>&lt;b&gt;2階&lt;/b&gt;</ins>" in review  # the character-level difference
    assert f'name="reviewed_revision" value="{record.revision}"' in review
    response = post(
        editor,
        f"/moderation/{contribution_id}/accept",
        {"reviewed_revision": str(record.revision)},
        form_page="/moderation",
    )
    assert response.status_code == 303
    after = get_library(app).get_record(RECORD_ID)
    assert after is not None and after.revision == record.revision + 1 and after.data["place"] == new_place
    assert "2階" in text_of(client.get(f"/records/{RECORD_ID}"))


def test_a_record_changed_after_the_suggestion_is_shown_to_the_editor_before_accepting(
    app: Flask, client_as: Callable[..., FlaskClient], post: Post
) -> None:
    citizen = client_as("citizen")
    post(
        citizen,
        f"/records/{RECORD_ID}/suggest",
        suggest_form(citizen, fee="500円"),
        form_page="/contributions/mine",
    )
    contribution_id = pending_id(app)
    library = get_library(app)
    record = library.get_record(RECORD_ID)
    assert record is not None
    library.ingest({**record.data, "audience": "0〜3歳の子の保護者"}, author="tests", summary="meanwhile")

    editor = client_as("editor")
    stale = post(
        editor,
        f"/moderation/{contribution_id}/accept",
        {"reviewed_revision": str(record.revision)},
        form_page="/moderation",
    )
    assert stale.status_code == 409
    page = text_of(stale)
    assert "確認している間に記録が更新されました" in page
    assert "提案のあとで記録が更新されています" in page
    assert f'name="reviewed_revision" value="{record.revision + 1}"' in page
    response = post(
        editor,
        f"/moderation/{contribution_id}/accept",
        {"reviewed_revision": str(record.revision + 1)},
        form_page="/moderation",
    )
    assert response.status_code == 303
    after = library.get_record(RECORD_ID)
    assert after is not None and (after.data["fee"], after.data["audience"]) == (
        "500円",
        "0〜3歳の子の保護者",
    )


# --- rate limit ---------------------------------------------------------------------------------------------------


def test_contributions_are_rate_limited_per_account(
    client_as: Callable[..., FlaskClient], post: Post
) -> None:
    busy, other = client_as("citizen"), client_as("citizen")
    for _ in range(20):
        assert post(busy, "/contribute", {"kind": ""}, form_page="/contributions/mine").status_code == 400
    assert post(busy, "/contribute", {"kind": ""}, form_page="/contributions/mine").status_code == 429
    assert busy.get("/contribute").status_code == 200  # reading the form is not limited
    assert post(other, "/contribute", {"kind": ""}, form_page="/contributions/mine").status_code == 400
