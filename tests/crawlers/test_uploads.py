"""The upload policy: type by content, generated names, one record namespace, own-copy URLs (T23), on
SQLite and PostgreSQL, through the real pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from crawlers.charset import content_key
from crawlers.pipeline import crawl
from crawlers.uploads import (
    UPLOAD_TAG,
    UploadRefused,
    UploadType,
    add_upload_source,
    detect_type,
    display_name,
    own_copy_url,
    public_url_from_env,
    store_upload,
)
from indexer.config import Settings
from indexer.library import Library
from indexer.search import Query
from indexer.store import RecordRow, SourceRow

PUBLIC = "https://library.example.jp"
FAQ_JSONL = ('{"kind": "faq", "title": "粗大ごみの出し方は？", "body": "予約制です。"}\n'
             '{"kind": "faq", "body": "タイトルがありません"}\n'
             "{こわれた行}\n"
             '{"kind": "faq", "title": "資源ごみの日は？", "body": "水曜日です。"}\n').encode()
PAGE_HTML = ('<html><head><title>防災訓練のお知らせ</title></head><body><nav>メニュー</nav>'
             "<main><p>９月１日に防災訓練を行います。</p><script>alert(1)</script></main></body></html>")


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF whose text is ``text`` (Identity-H codes = code points, with a ToUnicode map)."""
    chars = sorted(set(text))
    cmap = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /U def "
            "1 begincodespacerange <0000> <FFFF> endcodespacerange "
            f"{len(chars)} beginbfchar {' '.join(f'<{ord(c):04x}> <{ord(c):04x}>' for c in chars)} endbfchar "
            "endcmap CMapName currentdict /CMap defineresource pop end end")
    content = f"BT /F1 12 Tf 72 720 Td <{text.encode('utf-16-be').hex()}> Tj ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
        "/Contents 4 0 R >>",
        f"<< /Length {len(content.encode())} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type0 /BaseFont /Mincho /Encoding /Identity-H /DescendantFonts [<< /Type /Font "
        "/Subtype /CIDFontType0 /BaseFont /Mincho /CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) "
        "/Supplement 6 >> >>] /ToUnicode 6 0 R >>",
        f"<< /Length {len(cmap.encode())} >>\nstream\n{cmap}\nendstream",
    ]
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


PDF = tiny_pdf("ごみ分別の手引き 令和8年版")


@pytest.fixture()
def library(database_url: str, data_dir: Path) -> Iterator[Library]:
    lib = Library.open(Settings.from_env(data_dir=data_dir, database_url=database_url))
    yield lib
    lib.close()


def upload(library: Library, name: str, content: bytes, **options: object) -> SourceRow:
    return add_upload_source(library.store, library.settings.data_dir, name, content,
                             **({"provenance": "government", "public_url": PUBLIC} | options))


def uploaded(library: Library) -> list[RecordRow]:
    with library.store.session(readonly=True) as session:
        return list(session.scalars(select(RecordRow).where(RecordRow.source == UPLOAD_TAG).order_by(RecordRow.title)))


def counts(summary) -> tuple[int, ...]:  # noqa: ANN001
    c = summary.counts
    return c.fetched, c.new, c.updated, c.unchanged, c.failed, c.skipped


# --- type, size and name checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.pdf", PDF, UploadType.PDF),
        ("renamed.bin", PDF, UploadType.PDF),
        ("a.html", PAGE_HTML.encode("cp932"), UploadType.HTML),
        ("page", b"\xef\xbb\xbf<!doctype html><title>x</title>", UploadType.HTML),
        ("a.csv", "名称,住所\n公園,焼津市\n".encode("cp932"), UploadType.CSV),
        ("a.json", b'[{"kind": "faq"}]', UploadType.JSON),
        ("a.jsonl", FAQ_JSONL, UploadType.JSONL),
        ("records", FAQ_JSONL, UploadType.JSONL),
    ],
)
def test_the_type_comes_from_the_bytes(name: str, content: bytes, expected: UploadType) -> None:
    assert detect_type(name, content) == expected


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("book.csv", b"PK\x03\x04" + b"\x00" * 40, "ZIP"),
        ("data.json", b"\x1f\x8b\x08\x00" + b"\x00" * 20, "gzip"),
        ("old.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 20, "Office"),
        ("photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "PNG"),
        ("tool.html", b"MZ\x90\x00", "実行ファイル"),
        ("fake.pdf", b"<html>not a pdf</html>", "PDF ではありません"),
        ("fake.html", b"kind,title\nfaq,a\n", "HTML ではありません"),
        ("fake.json", b"kind,title\n", "JSON ではありません"),
        ("pdf.csv", PDF, "中身は PDF"),
        ("blob.csv", b"a,b\n\x00\x01\x02", "テキストでない"),
        ("empty.csv", b"  \n", "空です"),
        ("notes", "ただのメモ".encode(), "形式がわかりません"),
    ],
)
def test_files_we_do_not_read_are_refused_by_their_bytes(name: str, content: bytes, match: str) -> None:
    with pytest.raises(UploadRefused, match=match):
        detect_type(name, content)


def test_stored_names_are_generated_and_the_same_bytes_are_one_file(tmp_path: Path) -> None:
    first = store_upload(tmp_path, "../../etc/passwd.csv", "名称,住所\n公園,焼津市\n".encode())
    again = store_upload(tmp_path, "別名.csv", "名称,住所\n公園,焼津市\n".encode())
    assert first == again
    assert first.path.parent == tmp_path / "uploads" and first.path.name == f"{first.sha256}.csv"
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == [first.path.name]
    assert display_name("../../etc/passwd.csv") == "passwd.csv"
    assert display_name("C:\\Users\\a\\報告.csv") == "報告.csv"


def test_too_large_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    html = b"<html>" + b"a" * (5 * 1024 * 1024)
    with pytest.raises(UploadRefused, match="大きすぎます"):
        store_upload(tmp_path, "big.html", html)
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())


def test_the_public_url_setting() -> None:
    assert public_url_from_env({}) == "http://127.0.0.1:8000/"
    assert public_url_from_env({"LIBRARY_PUBLIC_URL": "https://library.example.jp"}) == PUBLIC + "/"
    with pytest.raises(UploadRefused, match="LIBRARY_PUBLIC_URL"):
        public_url_from_env({"LIBRARY_PUBLIC_URL": "ftp://x"})


def test_upload_settings_are_checked(library: Library) -> None:
    with pytest.raises(UploadRefused, match="責任者"):
        upload(library, "a.pdf", PDF, provenance="someone")
    with pytest.raises(UploadRefused, match="種別"):
        upload(library, "a.pdf", PDF, kind="notice")
    with pytest.raises(UploadRefused, match="http"):
        upload(library, "a.pdf", PDF, url="javascript:alert(1)")


# --- through the pipeline -----------------------------------------------------------------------------------


def test_a_pdf_without_url_becomes_a_page_at_the_librarys_own_copy(library: Library) -> None:
    source = upload(library, "手引き.pdf", PDF, organization="サンプル市")
    assert counts(crawl(library, source.id)) == (1, 1, 0, 0, 0, 0)
    [record] = uploaded(library)
    own_copy = own_copy_url(PUBLIC, "page", content_key("", "ごみ分別の手引き 令和8年版"))  # keyed by its text
    assert record.data["url"] == f"{PUBLIC}/records/{record.id}" == own_copy
    assert (record.kind, record.title, record.data["body"]) == ("page", "ごみ分別の手引き 令和8年版", "ごみ分別の手引き 令和8年版")
    assert (record.data["provenance"], record.data["organization"]) == ("government", "サンプル市")
    assert [hit.id for hit in library.search(Query(text="分別")).hits] == [record.id]  # drained: searchable
    # The same bytes under another name: the same source, read again, nothing new.
    again = upload(library, "コピー.pdf", PDF, organization="サンプル市")
    assert again.id == source.id
    assert counts(crawl(library, again.id)) == (1, 0, 0, 1, 0, 0)
    assert len(uploaded(library)) == 1


def test_html_in_cp932_and_euc_jp_is_text_only_and_deduped_by_content(library: Library) -> None:
    # The wave dash is where the codecs differ: cp932 reads 0x8160 as ～ (U+FF5E), EUC-JP 0xA1C1 as 〜 (U+301C).
    html = PAGE_HTML.replace("行います。", "行います（雨天時〜正午）。")
    sjis = upload(library, "kunren.html", html.encode("cp932"))
    euc = upload(library, "kunren-euc.html", html.encode("euc_jp"))
    assert sjis.id != euc.id  # different bytes, two files
    assert counts(crawl(library, sjis.id)) == (1, 1, 0, 0, 0, 0)
    assert counts(crawl(library, euc.id)) == (1, 0, 0, 1, 0, 0)  # the same document: found again, unchanged
    # Neither has a URL of its own: the record is keyed by the extracted text, which is the same in both
    # encodings, so two files are one record, and it carries none of the markup.
    [record] = uploaded(library)
    assert record.data["body"] == "９月１日に防災訓練を行います（雨天時～正午）。"  # as the first upload read it
    assert record.title == "防災訓練のお知らせ" and record.revision == 1
    assert record.data["url"] == f"{PUBLIC}/records/{record.id}"
    assert "<" not in json.dumps(record.data, ensure_ascii=False) and "alert" not in record.data["body"]


def test_a_records_file_keeps_its_good_lines_and_names_the_bad_ones(library: Library) -> None:
    source = upload(library, "よくある質問.jsonl", FAQ_JSONL, provenance="npo")
    summary = crawl(library, source.id)
    assert counts(summary) == (1, 2, 0, 0, 2, 0)
    assert summary.status == "finished"
    assert [error["url"] for error in summary.errors] == ["よくある質問.jsonl"] * 2
    assert summary.errors[0]["message"] == "2 行目: title: 必須項目です"
    assert summary.errors[1]["message"].startswith("3 行目: JSON として読めません")
    assert [record.title for record in uploaded(library)] == ["粗大ごみの出し方は？", "資源ごみの日は？"]
    # The corrected file: the good lines are found again, only the fixed one is new.
    fixed = FAQ_JSONL.replace(b'{"kind": "faq", "body"', '{"kind": "faq", "title": "直した", "body"'.encode())
    fixed = fixed.replace("{こわれた行}\n".encode(), b"")
    corrected = upload(library, "よくある質問（修正）.jsonl", fixed, provenance="npo")
    assert counts(crawl(library, corrected.id)) == (1, 1, 0, 2, 0, 0)
    assert len(uploaded(library)) == 3


def test_a_document_uploaded_as_another_kind_has_no_url_unless_given(library: Library) -> None:
    faq = upload(library, "qa.pdf", tiny_pdf("ごみの日はいつですか"), kind="faq")
    crawl(library, faq.id)
    given = upload(library, "kunren.html", PAGE_HTML.encode(), url="https://www.city.example.lg.jp/kunren.html")
    crawl(library, given.id)
    by_kind = {record.kind: record.data for record in uploaded(library)}
    assert "url" not in by_kind["faq"] or by_kind["faq"]["url"] is None
    assert by_kind["page"]["url"] == "https://www.city.example.lg.jp/kunren.html"


def test_an_unreadable_pdf_fails_the_run_with_a_japanese_error(library: Library) -> None:
    source = upload(library, "broken.pdf", b"%PDF-1.7\n garbage that is no PDF")
    summary = crawl(library, source.id)
    assert summary.status == "failed" and summary.counts.failed == 1
    assert summary.errors[0]["url"] == "broken.pdf" and "PDF を読めません" in summary.errors[0]["message"]
