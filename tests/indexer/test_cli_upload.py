"""`library import` of CSV, JSON, JSONL, HTML and PDF files, as an operator runs it (the upload policy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.cli import main


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


@pytest.fixture()
def run(data_dir: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - a small helper closure
    monkeypatch.setenv("LIBRARY_PUBLIC_URL", "https://library.example.jp")
    runner = CliRunner()

    def invoke(*args: str):  # noqa: ANN202
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def hits(run, query: str) -> list[dict]:  # noqa: ANN001
    return json.loads(run("search", query, "--json").output)["hits"]


def test_a_pdf_without_url_is_imported_as_a_page_of_the_library(run, tmp_path: Path) -> None:  # noqa: ANN001
    pdf = tmp_path / "ごみ分別の手引き.pdf"
    pdf.write_bytes(tiny_pdf("資源ごみの分別のしかた"))
    result = run("import", str(pdf), "--provenance", "government", "--organization", "サンプル市")
    assert result.exit_code == 0, result.output
    assert "新規 1" in result.output and "失敗 0" in result.output
    [hit] = hits(run, "分別")
    assert hit["kind"] == "page" and hit["url"] == f"https://library.example.jp/records/{hit['id']}"
    again = run("import", str(pdf), "--provenance", "government", "--organization", "サンプル市")
    assert "新規 0" in again.output and "変更なし 1" in again.output  # deduped by content


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp"])
def test_html_in_a_japanese_encoding_becomes_a_text_record(run, tmp_path: Path, encoding: str) -> None:  # noqa: ANN001
    page = tmp_path / "kairan.html"
    page.write_bytes(('<html><head><title>回覧板</title></head><body><main><p>町内清掃のお知らせ</p>'
                      "<script>alert(1)</script></main></body></html>").encode(encoding))
    result = run("import", str(page), "--provenance", "citizen", "--kind", "contribution")
    assert result.exit_code == 0, result.output
    [hit] = hits(run, "町内清掃")
    assert (hit["kind"], hit["title"], hit["url"]) == ("contribution", "回覧板", None)


def test_csv_and_json_keep_their_good_lines_and_exit_1(run, tmp_path: Path) -> None:  # noqa: ANN001
    csv_file = tmp_path / "events.csv"
    csv_file.write_bytes("イベント名,開始日,場所名称\n朝市,2026-05-01,港\n,2026-05-02,港\n".encode("cp932"))
    result = run("import", str(csv_file), "--provenance", "government", "--organization", "サンプル市")
    assert result.exit_code == 1
    assert "新規 1" in result.output and "失敗 1" in result.output
    assert "2 件目（3 行目）: イベント名が空です" in result.output
    assert hits(run, "朝市")[0]["kind"] == "program"
    json_file = tmp_path / "faq.json"
    json_file.write_text(json.dumps([{"kind": "faq", "title": "粗大ごみは？", "body": "予約制です"}],
                                    ensure_ascii=False), encoding="utf-8")
    assert run("import", str(json_file), "--provenance", "npo").exit_code == 0
    assert hits(run, "粗大ごみ")[0]["kind"] == "faq"


def test_jsonl_is_the_operators_import_and_an_upload_with_provenance(run, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"id": "faq-own", "kind": "faq", "title": "ごみの日", "provenance": "government"},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    assert "新規 1 件" in run("import", str(path)).output
    assert hits(run, "ごみの日")[0]["id"] == "faq-own"  # the operator's id is kept
    path.write_text(json.dumps({"id": "faq-own", "kind": "faq", "title": "別の内容", "provenance": "citizen"},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    uploaded = run("import", str(path), "--provenance", "citizen")
    assert uploaded.exit_code == 0 and "新規 1" in uploaded.output
    assert hits(run, "ごみの日")[0]["id"] == "faq-own"  # an upload cannot overwrite a record by its id
    assert hits(run, "別の内容")[0]["id"] != "faq-own"


def test_refusals_are_clear(run, tmp_path: Path) -> None:  # noqa: ANN001
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(tiny_pdf("テスト"))
    missing = CliRunner().invoke(main, ["import", str(pdf)])
    assert missing.exit_code == 2 and "--provenance" in missing.output
    xlsx = tmp_path / "book.csv"
    xlsx.write_bytes(b"PK\x03\x04" + b"\x00" * 30)
    refused = CliRunner().invoke(main, ["import", str(xlsx), "--provenance", "npo"])
    assert refused.exit_code == 1 and "ZIP" in refused.output
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\nnot really")
    failed = CliRunner().invoke(main, ["import", str(broken), "--provenance", "npo"])
    assert failed.exit_code == 1 and "PDF を読めません" in failed.output
