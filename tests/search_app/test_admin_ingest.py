"""The admin pages of ingestion: sources and crawl runs (admin), uploads (editors), with the real job runner,
a local site on 127.0.0.2, CSRF and the audit log."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pypdf
import pytest
from flask import Flask
from sqlalchemy import select

from indexer.store import AuditRow, CrawlRunRow, RecordRow, SourceRow

PAGE = ('<html><head><meta charset="utf-8"><title>粗大ごみ受付センター</title></head>'
        "<body><nav>メニュー</nav><main><p>粗大ごみは電話で予約してください。</p></main></body></html>").encode()


class _Site(ThreadingHTTPServer):
    """A one-page municipal site on 127.0.0.2; while ``hold`` is clear, the page is not answered."""

    def __init__(self) -> None:
        self.hold = threading.Event()
        self.hold.set()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/robots.txt":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                site.hold.wait(30)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.2", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.2:{self.server_address[1]}{path}"


@pytest.fixture()
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Site]:
    monkeypatch.setenv("LIBRARY_CRAWL_ALLOW_HOSTS", "127.0.0.2")  # the crawl settings' intranet allowance
    monkeypatch.setenv("LIBRARY_CRAWL_DELAY", "0")
    server = _Site()
    yield server
    server.hold.set()
    server.shutdown()
    server.server_close()


def store_of(app: Flask) -> Any:
    return app.extensions["library"].store


def wait_for(condition: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


def latest_run(app: Flask, source_id: int, status: str | None = None) -> CrawlRunRow | None:
    with store_of(app).session(readonly=True) as session:
        run = session.scalar(select(CrawlRunRow).where(CrawlRunRow.source_id == source_id)
                             .order_by(CrawlRunRow.id.desc()).limit(1))
    return run if run is not None and (status is None or run.status == status) else None


def audited(app: Flask, action: str) -> list[AuditRow]:
    with store_of(app).session(readonly=True) as session:
        return list(session.scalars(select(AuditRow).where(AuditRow.action == action)))


def only_source(app: Flask, kind: str) -> SourceRow:
    with store_of(app).session(readonly=True) as session:
        [row] = session.scalars(select(SourceRow).where(SourceRow.kind == kind)).all()
    return row


# --- who may -------------------------------------------------------------------------------------------------


def test_the_sources_page_is_for_admins_and_uploads_for_editors(client, client_as, post) -> None:  # noqa: ANN001
    assert client.get("/admin/sources").status_code == 302  # to the login form
    assert client.get("/admin/uploads").status_code == 302
    editor, citizen, admin = client_as("editor"), client_as("citizen"), client_as("admin")
    assert editor.get("/admin/sources").status_code == 403
    assert citizen.get("/admin/sources").status_code == 403
    assert citizen.get("/admin/uploads").status_code == 403
    assert post(editor, "/admin/sources", {"kind": "web", "locations": "https://example.jp/",
                                           "provenance": "npo"}).status_code == 403
    assert post(editor, "/admin/sources/1/crawl").status_code == 403
    page = admin.get("/admin/sources")
    assert page.status_code == 200 and "情報源と取得の状況" in page.get_data(as_text=True)
    assert editor.get("/admin/uploads").status_code == 200
    assert admin.get("/admin/uploads").status_code == 200


def test_every_form_carries_a_csrf_token_and_needs_it(app: Flask, client_as) -> None:  # noqa: ANN001
    admin = client_as("admin")
    for path in ("/admin/sources", "/admin/uploads"):
        html = admin.get(path).get_data(as_text=True)
        assert html.count("<form") == html.count('name="csrf_token"')  # the logout form included
    refused = admin.post("/admin/sources", data={"kind": "web", "locations": "https://example.jp/",
                                                 "provenance": "npo"})
    assert refused.status_code == 400
    with store_of(app).session(readonly=True) as session:
        assert session.scalars(select(SourceRow)).all() == []


# --- sources and crawl runs -----------------------------------------------------------------------------------


def test_admin_adds_a_source_and_crawl_now_never_waits_for_the_crawl(app: Flask, client_as, post,  # noqa: ANN001
                                                                    site: _Site) -> None:
    admin = client_as("admin")
    added = post(admin, "/admin/sources", {"kind": "web", "locations": site.url(), "name": "サンプル市のごみ情報",
                                           "provenance": "government", "organization": "サンプル市", "depth": "0",
                                           "schedule": "@daily"})
    assert added.status_code == 303
    source = only_source(app, "web")
    assert (source.name, source.organization, source.schedule, source.options["depth"]) == (
        "サンプル市のごみ情報", "サンプル市", "@daily", 0)
    assert [row.target for row in audited(app, "source.add")] == [f"source:{source.id}"]

    site.hold.clear()  # the crawl will hang on the page until released
    began = time.monotonic()
    assert post(admin, f"/admin/sources/{source.id}/crawl").status_code == 303
    assert time.monotonic() - began < 3  # the request did not wait for the crawl
    wait_for(lambda: latest_run(app, source.id, "running"))
    running = admin.get("/admin/sources").get_data(as_text=True)
    assert "実行中" in running and "<progress" in running and "0 / 1 件処理済み" in running
    site.hold.set()
    run = wait_for(lambda: latest_run(app, source.id, "finished"))
    assert (run.fetched, run.new, run.failed) == (1, 1, 0)
    page = admin.get("/admin/sources").get_data(as_text=True)
    assert "取得 1・新規 1・更新 0・変更なし 0・失敗 0" in page and "完了" in page
    assert len(audited(app, "source.crawl")) == 1
    with store_of(app).session(readonly=True) as session:
        record = session.scalar(select(RecordRow).where(RecordRow.source == f"source:{source.id}"))
    assert (record.title, record.data["organization"]) == ("粗大ごみ受付センター", "サンプル市")


def test_enable_and_disable_are_audited(app: Flask, client_as, post) -> None:  # noqa: ANN001
    admin = client_as("admin")
    post(admin, "/admin/sources", {"kind": "feed", "locations": "https://example.jp/feed.rss", "provenance": "npo"})
    source = only_source(app, "feed")
    assert post(admin, f"/admin/sources/{source.id}/disable").status_code == 303
    assert only_source(app, "feed").enabled is False
    assert "（停止中）" in admin.get("/admin/sources").get_data(as_text=True)
    assert post(admin, f"/admin/sources/{source.id}/enable").status_code == 303
    assert only_source(app, "feed").enabled is True
    assert [len(audited(app, action)) for action in ("source.disable", "source.enable")] == [1, 1]
    assert post(admin, "/admin/sources/9999/disable").status_code == 404


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"kind": "web", "locations": "/etc/passwd"}, "http:// または https://"),
        ({"kind": "opendata", "locations": "file:///etc/passwd"}, "http または https の URL"),
        ({"kind": "web", "locations": "https://example.jp/", "schedule": "60"}, "300 秒以上"),
        ({"kind": "web", "locations": "https://example.jp/", "include": "(unclosed"}, "正規表現"),
        ({"kind": "web", "locations": "https://example.jp/", "depth": "深い"}, "整数"),
        ({"kind": "upload", "locations": "https://example.jp/a.csv"}, "種類を選んでください"),
        ({"kind": "web", "locations": "https://example.jp/", "provenance": "anyone"}, "provenance"),
    ],
)
def test_a_bad_source_is_refused_in_japanese(app: Flask, client_as, post,  # noqa: ANN001
                                             form: dict, message: str) -> None:
    response = post(client_as("admin"), "/admin/sources", {"provenance": "government", **form})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with store_of(app).session(readonly=True) as session:
        assert session.scalars(select(SourceRow)).all() == []


# --- uploads ---------------------------------------------------------------------------------------------------


def upload(client, post, name: str, content: bytes, **fields: str):  # noqa: ANN001, ANN201
    data = {"provenance": "npo", **fields, "file": (io.BytesIO(content), name)}
    return post(client, "/admin/uploads", data, content_type="multipart/form-data")


def upload_run(app: Flask) -> CrawlRunRow:
    source = only_source(app, "upload")
    return wait_for(lambda: latest_run(app, source.id, "finished"))


EVENTS = ("イベント名,開始日,場所名称\n"
          "みなと朝市,2026-05-01,焼津漁港\n"
          ",2026-05-02,焼津漁港\n")


def test_an_upload_keeps_the_good_lines_and_shows_each_bad_one(app: Flask, client_as, post,  # noqa: ANN001
                                                               data_dir: Path) -> None:
    editor = client_as("editor")
    response = upload(editor, post, "../../イベント.csv", EVENTS.encode("cp932"), organization="焼津市")
    assert response.status_code == 303
    run = upload_run(app)
    assert (run.new, run.failed) == (1, 1)
    page = editor.get("/admin/uploads").get_data(as_text=True)
    assert "イベント.csv" in page and "../" not in page
    assert "2 件目（3 行目）: イベント名が空です" in page
    assert "新規 1" in page
    with store_of(app).session(readonly=True) as session:
        record = session.scalar(select(RecordRow).where(RecordRow.source == "upload"))
    assert (record.title, record.data["organizer"]) == ("みなと朝市", "焼津市")  # the organization, no column
    stored = [path.name for path in (data_dir / "uploads").iterdir()]
    assert len(stored) == 1 and stored[0].endswith(".csv") and len(stored[0]) == 64 + 4  # sha256.csv
    assert not list(data_dir.parent.rglob("イベント.csv"))  # the client's name is nowhere on disk
    [event] = audited(app, "upload.add")
    assert event.target == f"source:{only_source(app, 'upload').id}" and event.detail["type"] == "csv"


def test_an_html_upload_without_url_becomes_its_own_record_page(app: Flask, client_as, post) -> None:  # noqa: ANN001
    editor = client_as("editor")
    html = ('<html><head><title>回覧板</title></head><body><main><p>町内清掃は日曜日です。</p>'
            '<script>alert("x")</script></main></body></html>').encode("euc_jp")
    assert upload(editor, post, "kairan.html", html).status_code == 303
    assert upload_run(app).new == 1
    with store_of(app).session(readonly=True) as session:
        record = session.scalar(select(RecordRow).where(RecordRow.source == "upload"))
    assert record.data["url"] == f"http://localhost/records/{record.id}"  # the request's root: no setting
    page = editor.get(f"/records/{record.id}")  # the own-copy URL is the record page of this app
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "町内清掃は日曜日です。" in text and 'alert("x")' not in text


def test_the_public_url_setting_wins_over_the_request_host(app: Flask, client_as, post,  # noqa: ANN001
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBRARY_PUBLIC_URL", "https://library.example.jp")
    html = "<html><head><title>お知らせ</title></head><body><p>本文</p></body></html>".encode()
    assert upload(client_as("editor"), post, "a.html", html).status_code == 303  # sent to http://localhost/
    upload_run(app)
    with store_of(app).session(readonly=True) as session:
        record = session.scalar(select(RecordRow).where(RecordRow.source == "upload"))
    assert record.data["url"] == f"https://library.example.jp/records/{record.id}"


def test_a_pdf_upload_with_its_url(app: Flask, client_as, post) -> None:  # noqa: ANN001
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": "防災マップ（令和8年版）"})
    buffer = io.BytesIO()
    writer.write(buffer)
    response = upload(client_as("editor"), post, "bousai.pdf", buffer.getvalue(),
                      url="https://www.city.example.lg.jp/bousai.pdf", provenance="government")
    assert response.status_code == 303
    assert upload_run(app).new == 1
    with store_of(app).session(readonly=True) as session:
        record = session.scalar(select(RecordRow).where(RecordRow.source == "upload"))
    assert (record.kind, record.title, record.data["url"]) == (
        "page", "防災マップ（令和8年版）", "https://www.city.example.lg.jp/bousai.pdf")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("book.csv", b"PK\x03\x04" + b"\x00" * 60, "ZIP"),
        ("photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 60, "PNG"),
        ("page.html", b"kind,title\nfaq,a\n", "HTML ではありません"),
    ],
)
def test_files_we_do_not_read_are_refused_and_nothing_is_stored(app: Flask, client_as, post,  # noqa: ANN001
                                                                  data_dir: Path, name: str, content: bytes,
                                                                  message: str) -> None:
    response = upload(client_as("editor"), post, name, content)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    with store_of(app).session(readonly=True) as session:
        assert session.scalars(select(SourceRow)).all() == []
    assert not (data_dir / "uploads").exists() or not any((data_dir / "uploads").iterdir())
    assert audited(app, "upload.refused")[0].outcome == "failed"


def test_a_body_over_the_cap_is_refused_with_413(app: Flask, client_as) -> None:  # noqa: ANN001
    # A raw body: the test client would spool a large multipart form to a temporary file of its own.
    too_big = b"--x\r\n" + b"a" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = client_as("editor").post("/admin/uploads", data=too_big, content_type="multipart/form-data; boundary=x")
    assert response.status_code == 413


def test_a_missing_file_is_asked_for(client_as, post) -> None:  # noqa: ANN001
    response = post(client_as("editor"), "/admin/uploads", {"provenance": "npo"})
    assert response.status_code == 400 and "ファイルを選んでください" in response.get_data(as_text=True)


def test_an_upload_can_be_read_again_and_only_uploads_can(app: Flask, client_as, post) -> None:  # noqa: ANN001
    editor = client_as("editor")
    upload(editor, post, "faq.json", '[{"kind": "faq", "title": "ごみの日は？"}]'.encode())
    first = upload_run(app)
    source = only_source(app, "upload")
    assert post(editor, f"/admin/uploads/{source.id}/retry").status_code == 303
    again = wait_for(lambda: (run := latest_run(app, source.id, "finished")) and run.id != first.id and run)
    assert (again.new, again.unchanged) == (0, 1)  # the same file: found again, nothing duplicated
    assert len(audited(app, "upload.retry")) == 1
    post(client_as("admin"), "/admin/sources", {"kind": "feed", "locations": "https://example.jp/a.rss",
                                                "provenance": "npo"})
    assert post(editor, f"/admin/uploads/{only_source(app, 'feed').id}/retry").status_code == 404
