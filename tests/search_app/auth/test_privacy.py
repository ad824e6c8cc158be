"""T08 for accounts: who contributed, edited or reported is never in the public index, the search API or the
logs; only what they contributed is. Canary names and addresses, in full- and half-width and kana variants,
belong to accounts that register, log in, contribute, have contributions accepted, and edit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import tantivy
from flask import Flask
from flask.testing import FlaskClient

from indexer.contributions import accept, submit_record
from search_app import get_library

CANARIES = [
    ("鴨嘴獣太郎", "kamonohashi.taro@example.jp"),
    ("ｶﾓﾉﾊｼ花子", "ｋａｍｏｎｏｈａｓｈｉ．ｈａｎａｋｏ@example.jp"),
    ("かものはし次郎", "kamonohashi-jiro@example.jp"),
]
PASSWORD = "みなと市の図書館は駅の北口"


def index_dump(app: Flask) -> str:
    """Every stored field of every document in the live tantivy index, as text."""
    engine = get_library(app).engine
    index = engine._current()  # the test reads the raw index on purpose
    index.reload()
    searcher = index.searcher()
    hits = searcher.search(tantivy.Query.all_query(), limit=100_000).hits
    texts = []
    for _, address in hits:
        for values in searcher.doc(address).to_dict().values():
            texts.extend(v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values)
    return "\n".join(texts)


def test_accounts_never_reach_the_index_api_or_logs(
    app: Flask, make_user: Callable[..., Any], login: Callable[..., FlaskClient], post: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    library = get_library(app)
    editor = make_user("editor", display_name="編集者カモノハシ三郎", email="saburo.kamonohashi@example.jp")
    caplog.set_level(logging.DEBUG)
    for number, (name, email) in enumerate(CANARIES):
        citizen = make_user("citizen", display_name=name, email=email)
        client = login(citizen)
        client.get("/account")
        contribution = submit_record(library.store, citizen.id, {
            "kind": "faq", "title": f"公民館の予約方法 その{number}",
            "body": "公民館の予約は窓口か電話で受け付けています。", "provenance": "citizen"})
        accept(library, contribution.id, editor_id=editor.id)
        post(client, "/logout")
    # Searchable now, and found by its own words, but not by who contributed it.
    api = app.test_client()
    assert api.get("/api/v1/search", query_string={"q": "公民館の予約方法"}).get_json()["total"] >= 3
    dump = index_dump(app)
    assert "公民館の予約方法" in dump
    terms = [part for name, email in CANARIES for part in (name, email, email.split("@")[0])]
    terms += ["カモノハシ", "かものはし", "kamonohashi", "ｋａｍｏｎｏｈａｓｈｉ", "三郎"]
    for term in terms:
        assert term not in dump, term
        body = api.get("/api/v1/search", query_string={"q": term}).get_json()
        assert body["total"] == 0, (term, [hit["title"] for hit in body["hits"]])
    # The records' public API shows no account either.
    for hit in api.get("/api/v1/search", query_string={"q": "公民館の予約方法"}).get_json()["hits"]:
        record = api.get(f"/api/v1/records/{hit['id']}").get_data(as_text=True)
        assert not any(term in record for term in terms), record[:300]
    # No canary, password, session id or e-mail address in anything logged during the test.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for term in [*terms, PASSWORD, "@example.jp"]:
        assert term not in logged, term
