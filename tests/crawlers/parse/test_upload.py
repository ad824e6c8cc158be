"""parse_upload: dispatch by magic bytes and extension; CSV, JSON, JSONL, HTML and PDF (PDFs built here)."""

from __future__ import annotations

import io
import json

import pypdf
import pytest

from crawlers.charset import content_key
from crawlers.parse import ParseError
from crawlers.parse.upload import ParsedUpload, parse_upload

PAGE_URL = "https://www.city.example.lg.jp/files/kouza.pdf"


def make_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A one-page PDF whose text is ``lines``: a Type0 font whose Identity-H codes are the characters'
    code points, with a ToUnicode map saying so. Enough for text extraction; no glyphs are embedded."""
    content = "BT /F1 12 Tf 72 720 Td " + " ".join(
        f"<{line.encode('utf-16-be').hex()}> Tj 0 -16 Td" for line in lines) + " ET"
    chars = sorted(set("".join(lines)))
    pairs = " ".join(f"<{ord(char):04x}> <{ord(char):04x}>" for char in chars)
    cmap = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /U def "
            "1 begincodespacerange <0000> <FFFF> endcodespacerange "
            f"{len(chars)} beginbfchar {pairs} endbfchar "
            "endcmap CMapName currentdict /CMap defineresource pop end end")
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
         "/Contents 4 0 R >>"),
        f"<< /Length {len(content.encode())} >>\nstream\n{content}\nendstream",
        ("<< /Type /Font /Subtype /Type0 /BaseFont /KozMinPr6N-Regular /Encoding /Identity-H "
         "/DescendantFonts [<< /Type /Font /Subtype /CIDFontType0 /BaseFont /KozMinPr6N-Regular "
         "/CIDSystemInfo << /Registry (Adobe) /Ordering (Japan1) /Supplement 6 >> /FontDescriptor 7 0 R >>] "
         "/ToUnicode 6 0 R >>"),
        f"<< /Length {len(cmap.encode())} >>\nstream\n{cmap}\nendstream",
        ("<< /Type /FontDescriptor /FontName /KozMinPr6N-Regular /Flags 4 /FontBBox [0 0 1000 1000] "
         "/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 700 /StemV 80 >>"),
    ]
    if title:
        objects.append(f"<< /Title <feff{title.encode('utf-16-be').hex()}> >>")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    info = f" /Info {len(objects)} 0 R" if title else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def encrypted(pdf: bytes, user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


PDF = make_pdf(["市民講座のご案内", "令和8年4月1日 中央公民館"], title="講座案内（4月）")


def only(parsed: ParsedUpload) -> dict:
    assert parsed.errors == []
    [draft] = parsed.drafts
    return draft


def test_pdf_text_and_title_from_metadata(assert_valid):
    draft = only(parse_upload("kouza.pdf", PDF, url=PAGE_URL))
    assert draft == {
        "kind": "page",
        "title": "講座案内（4月）",
        "body": "市民講座のご案内\n令和8年4月1日 中央公民館",
        "url": PAGE_URL,
        "site": "www.city.example.lg.jp",
    }
    assert_valid(draft)


def test_pdf_title_from_the_first_line_and_magic_over_extension():
    draft = only(parse_upload("upload.bin", make_pdf(["最初の行", "二行目"]), url=PAGE_URL))
    assert draft["title"] == "最初の行"


def test_pdf_encrypted_only_against_editing_is_read():
    draft = only(parse_upload("kouza.pdf", encrypted(PDF, ""), url=PAGE_URL))
    assert draft["body"].startswith("市民講座のご案内")


@pytest.mark.parametrize(
    ("content", "match"),
    [(encrypted(PDF, "secret"), "パスワード"), (b"%PDF-1.7\n garbage", "PDF を読めません"),
     (PDF[:300], "PDF を読めません")],
    ids=["password", "garbage", "truncated"],
)
def test_unreadable_pdfs(content, match):
    with pytest.raises(ParseError, match=match):
        parse_upload("kouza.pdf", content, url=PAGE_URL)


OWN_COPY = "https://library.example.jp/records/page-0123456789abcdef"


def test_a_page_without_any_url_takes_the_fallback_and_needs_one(assert_valid):
    draft = only(parse_upload("kouza.pdf", PDF, fallback_url=OWN_COPY))
    assert (draft["url"], draft["site"], draft["title"]) == (OWN_COPY, "library.example.jp", "講座案内（4月）")
    assert_valid(draft)
    assert only(parse_upload("kouza.pdf", PDF, url=PAGE_URL, fallback_url=OWN_COPY))["url"] == PAGE_URL
    with pytest.raises(ParseError, match="URL が必要"):
        parse_upload("kouza.pdf", PDF)


def test_a_document_becomes_the_kind_the_uploader_chose(assert_valid):
    faq = only(parse_upload("kouza.pdf", PDF, kind="faq", fallback_url=OWN_COPY))
    assert faq == {"kind": "faq", "title": "講座案内（4月）", "body": "市民講座のご案内\n令和8年4月1日 中央公民館"}
    assert_valid(faq)  # no URL: only a page needs one, and the fallback is for pages
    program = only(parse_upload("kouza.pdf", PDF, kind="program", organizer="中央公民館"))
    assert program["organizer"] == "中央公民館"
    assert_valid(program)
    with pytest.raises(ParseError, match="主催者"):
        parse_upload("kouza.pdf", PDF, kind="program")
    with pytest.raises(ParseError, match="種別"):
        parse_upload("kouza.pdf", PDF, kind="notice", url=PAGE_URL)  # a notice needs a maker, a hazard …


def test_html_upload_uses_the_given_url_or_the_declared_one(assert_valid):
    html = "<html><head><title>お知らせ</title></head><body><main><p>本文です。</p></main></body>".encode()
    given = only(parse_upload("page.html", html, url="https://example.jp/a"))
    assert (given["url"], given["title"], given["body"]) == ("https://example.jp/a", "お知らせ", "本文です。")
    declared = html.replace(b"</head>", b'<link rel="canonical" href="https://example.jp/b"></head>')
    sniffed = only(parse_upload("page", declared, fallback_url=OWN_COPY))
    assert sniffed["url"] == "https://example.jp/b"
    assert_valid(sniffed)
    assert only(parse_upload("page.htm", html, fallback_url=OWN_COPY))["url"] == OWN_COPY
    with pytest.raises(ParseError, match="URL"):
        parse_upload("page.htm", html)



def test_the_fallback_may_be_a_function_of_the_documents_text_key(assert_valid):
    html = "<html><head><title>お知らせ</title></head><body><main><p>受付は9時〜正午です。</p></main></body>"

    def own(key: str) -> str:
        return f"https://library.example.jp/records/page-{key[:16]}"

    sjis = parse_upload("a.html", html.encode("cp932"), fallback_url=own)
    euc = parse_upload("b.html", html.encode("euc_jp"), fallback_url=own)
    # cp932 reads the wave dash as ～, EUC-JP as 〜: the key folds that, the text keeps what the codec read.
    assert sjis.document_key == euc.document_key == content_key("お知らせ", "受付は9時〜正午です。")
    assert only(sjis)["url"] == only(euc)["url"] == own(sjis.document_key)
    assert (only(sjis)["body"], only(euc)["body"]) == ("受付は9時～正午です。", "受付は9時〜正午です。")
    assert_valid(only(sjis))
    assert parse_upload("a.json", b'[{"kind": "faq", "title": "x"}]').document_key is None  # records: no key

HOSTILE = ('<html><head><title>回覧板のお知らせ</title><script>alert("x")</script></head><body>'
           '<main><p onclick="steal()">町内清掃は５月１０日～です。</p><img src=x onerror="alert(1)">'
           '<a href="javascript:alert(2)">詳しく</a></main></body></html>')


@pytest.mark.parametrize(
    ("encoding", "declared"),
    [("cp932", False), ("cp932", True), ("euc_jp", False), ("euc_jp", True)],
    ids=["sjis-undeclared", "sjis-declared", "eucjp-undeclared", "eucjp-declared"],
)
def test_html_in_japanese_encodings_becomes_text_only(encoding, declared, assert_valid):
    # The wave dash each codec writes for 0x8160 / 0xA1C1: it must come back as that character, not as "?".
    tilde = "～" if encoding == "cp932" else "〜"
    html = HOSTILE.replace("～", tilde)
    if declared:
        charset = "Shift_JIS" if encoding == "cp932" else "EUC-JP"
        html = html.replace("<head>", f'<head><meta charset="{charset}">')
    draft = only(parse_upload("kairan.html", html.encode(encoding), fallback_url=OWN_COPY))
    assert draft["title"] == "回覧板のお知らせ"
    assert draft["body"] == f"町内清掃は５月１０日{tilde}です。\n詳しく"
    assert not any(mark in str(draft) for mark in ("<", "alert", "onerror", "javascript"))
    assert_valid(draft)


RECORDS = [
    {"kind": "faq", "title": "粗大ごみの出し方は？", "body": "予約制です。"},
    {"kind": "program", "title": "子育て講座", "organizer": "例市", "starts_at": "2026-05-01T10:00:00+09:00",
     "tags": ["子育て"]},
]


def test_json_one_record_or_a_list():
    assert parse_upload("one.json", json.dumps(RECORDS[0], ensure_ascii=False).encode()) == ParsedUpload(RECORDS[:1])
    assert parse_upload("list.json", json.dumps(RECORDS, ensure_ascii=False).encode()) == ParsedUpload(RECORDS)


def test_jsonl_with_blank_lines_and_by_content():
    text = "\n".join(json.dumps(record, ensure_ascii=False) for record in RECORDS) + "\n\n"
    assert parse_upload("records.jsonl", text.encode()) == ParsedUpload(RECORDS)
    assert parse_upload("records.txt", text.encode()) == ParsedUpload(RECORDS)


@pytest.mark.parametrize(
    ("filename", "content", "match"),
    [
        ("bad.json", b"{", "JSON として読めません"),
        ("bad.json", b"[" * 100_000, "JSON"),
        ("empty.json", b"[]", "1 件も"),
        ("empty.jsonl", b"\n\n", "1 件も"),
        ("book.xlsx", b"PK\x03\x04rest", "CSV"),
        ("notes.txt", "ただのメモ".encode(), "形式がわかりません"),
    ],
)
def test_unusable_uploads(filename, content, match):
    with pytest.raises(ParseError, match=match):
        parse_upload(filename, content)


@pytest.mark.parametrize(
    ("filename", "content", "errors"),
    [
        ("bad.json", b'[1, {"kind": "faq", "title": "a"}]', ["1 件目: レコードはオブジェクト（{...}）で書いてください"]),
        ("bad.jsonl", b'{"kind": "faq", "title": "a"}\n{oops}\n', ["2 行目: JSON として読めません"]),
        ("bad.jsonl", b'{"kind": "faq", "title": "a"}\n' + b"[" * 100_000 + b"\n", ["2 行目: JSON"]),
        ("bad.json", b'[{"kind": "faq", "title": "a"}, {"kind": "faq"}, {"kind": "unknown", "title": "x"}]',
         ["2 件目: title: 必須項目です", "3 件目: kind: 不明な種別です"]),
    ],
)
def test_bad_records_are_reported_and_the_good_ones_kept(filename, content, errors):
    parsed = parse_upload(filename, content)
    assert parsed.drafts == [{"kind": "faq", "title": "a"}]
    assert len(parsed.errors) == len(errors)
    for error, start in zip(parsed.errors, errors, strict=True):
        assert error.startswith(start), error


def test_generic_csv_with_record_field_headers():
    csv_text = ("kind,title,body,tags,organizer\n"
                "faq,ごみの日は？,月曜日です。,ごみ;くらし,\n"
                "program,講座,,,例市\n")
    assert parse_upload("records.csv", csv_text.encode("cp932")) == ParsedUpload([
        {"kind": "faq", "title": "ごみの日は？", "body": "月曜日です。", "tags": ["ごみ", "くらし"]},
        {"kind": "program", "title": "講座", "organizer": "例市"},
    ])


def test_generic_csv_errors_name_the_line_where_the_row_starts():
    csv_text = ('kind,title,body\n'
                'faq,"二行に\nわたる質問",答え\n'
                'faq,,タイトルなし\n'
                'faq,多すぎ,本文,余分\n'
                'faq,最後,本文\n')
    parsed = parse_upload("records.csv", csv_text.encode())
    assert [draft["title"] for draft in parsed.drafts] == ["二行に\nわたる質問", "最後"]
    assert parsed.errors == ["4 行目: title: 必須項目です", "5 行目: 見出し（3 列）より多い 4 列があります"]


@pytest.mark.parametrize(
    ("csv_text", "match"),
    [("kind,title,color\nfaq,a,red\n", "color"), ("title,body\na,b\n", "kind"),
     ('kind,title\nfaq,"' + "x" * 200_000 + '"\n', "CSV として読めません")],
)
def test_generic_csv_problems(csv_text, match):
    with pytest.raises(ParseError, match=match):
        parse_upload("records.csv", csv_text.encode())


def test_opendata_csv_upload_keeps_the_good_rows():
    header = "名称,住所,緯度,経度\n"
    parsed = parse_upload("aed.csv", (header + "公園,焼津市,34.8,138.3\n広場,焼津市,99,138.3\n").encode())
    assert [draft["title"] for draft in parsed.drafts] == ["公園"]
    assert len(parsed.errors) == 1 and parsed.errors[0].startswith("2 件目（3 行目）: 緯度")


def test_an_event_csv_upload_without_organizer_takes_the_given_one():
    parsed = parse_upload("events.csv", "イベント名,開始日\n朝市,2026-05-01\n".encode(), organizer="港の会")
    assert only(parsed)["organizer"] == "港の会"
