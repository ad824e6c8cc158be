"""Japanese charset golden corpus (RELIABILITY T15): fixtures generated here from strings written here."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawlers.charset import CharsetSource, decode_document

PROSE = "市立図書館からのお知らせ：年末年始は１２月２８日から１月４日まで休館します。ご了承ください。"
CP932_ONLY = "①㈱髙橋商店・﨑山ⅰ号館・№３・～季節限定～"  # NEC specials and IBM extensions
EUC_NEC = "①第一会場・②第二会場〜午後"  # NEC row 13, not in plain euc_jp: euc_jis_2004 decodes it
HALF_WIDTH = "ｲﾍﾞﾝﾄ情報ｶﾞｲﾄﾞ"
SHORT_EUC_14 = "東京都の図書館"  # 14 bytes in EUC-JP: charset_normalizer guessed Big5/cp949 for such text
SHORT_CP932_56 = "図書館の開館時間は午前九時から午後五時までです。休館日は"  # 56 bytes in cp932
KANA_ONLY = "おしらせ"

LABELS = {"utf-8": "UTF-8", "cp932": "Shift_JIS", "euc_jp": "EUC-JP", "iso2022_jp": "ISO-2022-JP"}
# Codec expected in DecodedText.encoding for each family.
CODEC = {"utf-8": "utf-8", "cp932": "cp932", "euc_jp": "euc_jp", "iso2022_jp": "iso2022_jp"}


def html(text: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head>{head}<title>お知らせ</title></head><body><p>{text}</p></body></html>"


def rss(text: str, declaration: str = "") -> str:
    return (f"{declaration}<rss version=\"2.0\"><channel><title>新着情報</title><item><title>{text}</title>"
            "<link>https://example.jp/news/1</link></item></channel></rss>")


def csv(text: str) -> str:
    return (f"施設名,住所,電話\n{text},東京都千代田区一丁目,03-1234-5678\n"
            "中央公民館,東京都港区二丁目,03-9876-5432\n")


def fixture(fixture_id: str, text: str, codec: str, *, content_type: str | None = None, kind: str = "html",
            source: CharsetSource, expected_codec: str | None = None, prefix: bytes = b""):
    content = prefix + text.encode(codec)
    assert content[len(prefix):].decode(codec) == text, f"{fixture_id}: the string must round-trip"
    return pytest.param(content, content_type, kind, text, source, expected_codec or CODEC.get(codec, codec),
                        id=fixture_id)


def _corpus() -> list:
    cases = []
    for family, label in LABELS.items():
        texts = {"prose": PROSE, "short": KANA_ONLY}
        if family in ("utf-8", "cp932"):
            texts["cp932-only"] = CP932_ONLY
        for name, text in texts.items():
            page = html(text)
            meta = html(text, f'<meta charset="{label}">')
            equiv = html(text, f'<meta http-equiv="Content-Type" content="text/html; charset={label}">')
            late_meta = html(text, "<!--" + "x" * 1100 + f'--><meta charset="{label}">')
            declared_rss = rss(text, f'<?xml version="1.0" encoding="{label}"?>')
            cases += [
                fixture(f"{family}-{name}-header", page, family, content_type=f"text/html; charset={label}",
                        source=CharsetSource.HEADER),
                fixture(f"{family}-{name}-meta", meta, family, content_type="text/html",
                        source=CharsetSource.META),
                fixture(f"{family}-{name}-http-equiv", equiv, family, source=CharsetSource.META),
                fixture(f"{family}-{name}-undeclared", page, family, source=CharsetSource.DETECTED),
                fixture(f"{family}-{name}-meta-after-1024", late_meta, family, source=CharsetSource.DETECTED),
                fixture(f"{family}-{name}-rss-declared", declared_rss, family,
                        content_type="application/rss+xml", kind="xml", source=CharsetSource.XML_DECLARATION),
                fixture(f"{family}-{name}-rss-undeclared", rss(text), family, kind="xml",
                        source=CharsetSource.DETECTED),
                fixture(f"{family}-{name}-csv-header", csv(text), family,
                        content_type=f"text/csv; charset={label}", kind="csv", source=CharsetSource.HEADER),
                fixture(f"{family}-{name}-csv-undeclared", csv(text), family, content_type="text/csv",
                        kind="csv", source=CharsetSource.DETECTED),
            ]
    return cases + [
        # Byte order marks.
        fixture("utf-8-bom", html(PROSE), "utf-8", prefix=b"\xef\xbb\xbf", source=CharsetSource.BOM),
        fixture("utf-8-bom-csv", csv(PROSE), "utf-8", prefix=b"\xef\xbb\xbf", kind="csv",
                source=CharsetSource.BOM),
        fixture("utf-16le-bom", html(PROSE), "utf-16-le", prefix=b"\xff\xfe", source=CharsetSource.BOM),
        fixture("utf-16be-bom-csv", csv(PROSE), "utf-16-be", prefix=b"\xfe\xff", kind="csv",
                source=CharsetSource.BOM),
        # Header and meta disagree, both decode: the header wins.
        fixture("conflict-header-sjis-meta-euc", html(PROSE, '<meta charset="EUC-JP">'), "cp932",
                content_type="text/html; charset=Shift_JIS", source=CharsetSource.HEADER),
        fixture("conflict-header-euc-meta-utf8", html(PROSE, '<meta charset="utf-8">'), "euc_jp",
                content_type="text/html; charset=EUC-JP", source=CharsetSource.HEADER),
        # A header the bytes contradict is skipped.
        fixture("wrong-header-utf8-meta-sjis", html(PROSE, '<meta charset="Shift_JIS">'), "cp932",
                content_type="text/html; charset=utf-8", source=CharsetSource.META),
        fixture("wrong-header-utf8-undeclared-euc", html(PROSE), "euc_jp",
                content_type="text/html; charset=utf-8", source=CharsetSource.DETECTED),
        fixture("ignored-header-latin1-euc", html(PROSE), "euc_jp",
                content_type="text/html; charset=ISO-8859-1", source=CharsetSource.DETECTED),
        fixture("ignored-header-unknown-label", html(PROSE), "cp932",
                content_type="text/html; charset=x-bogus", source=CharsetSource.DETECTED),
        # Shift_JIS labels mean cp932, so characters outside JIS X 0208 decode.
        *[fixture(f"mislabelled-{label}", html(CP932_ONLY), "cp932",
                  content_type=f"text/html; charset={label}", source=CharsetSource.HEADER)
          for label in ("Shift_JIS", "shift-jis", "sjis", "x-sjis", "windows-31j", '"SHIFT_JIS"',
                        "MS_Kanji")],
        fixture("mislabelled-meta-shift_jis", html(CP932_ONLY, '<meta charset="shift_jis">'), "cp932",
                source=CharsetSource.META),
        # EUC-JP with NEC row 13 falls back to euc_jis_2004.
        fixture("euc-nec-declared", html(EUC_NEC, '<meta charset="euc-jp">'), "euc_jis_2004",
                source=CharsetSource.META),
        fixture("euc-nec-undeclared", html(EUC_NEC), "euc_jis_2004", source=CharsetSource.DETECTED),
        # Half-width katakana.
        fixture("cp932-half-width-declared", html(HALF_WIDTH), "cp932",
                content_type="text/html; charset=sjis", source=CharsetSource.HEADER),
        fixture("euc-half-width-declared", html(HALF_WIDTH), "euc_jp",
                content_type="text/html; charset=euc-jp", source=CharsetSource.HEADER),
        fixture("cp932-half-width-undeclared", html(HALF_WIDTH), "cp932", source=CharsetSource.DETECTED),
        # Bodies under 100 bytes, bare (no markup).
        fixture("tiny-euc-14-bytes", SHORT_EUC_14, "euc_jp", kind="text", source=CharsetSource.DETECTED),
        fixture("tiny-cp932-56-bytes", SHORT_CP932_56, "cp932", kind="text", source=CharsetSource.DETECTED),
        fixture("tiny-euc-kana", KANA_ONLY, "euc_jp", kind="text", source=CharsetSource.DETECTED),
        fixture("tiny-cp932-kana", KANA_ONLY, "cp932", kind="text", source=CharsetSource.DETECTED),
        fixture("tiny-iso2022", KANA_ONLY, "iso2022_jp", kind="text", source=CharsetSource.DETECTED),
        fixture("tiny-utf8", SHORT_EUC_14, "utf-8", kind="text", source=CharsetSource.DETECTED),
        fixture("tiny-euc-cp932-only-csv", csv("髙橋").replace("髙", "高"), "euc_jp", kind="csv",
                source=CharsetSource.DETECTED),
        fixture("ascii-only", "<p>Library notice</p>", "utf-8", kind="html", source=CharsetSource.DETECTED),
        fixture("empty", "", "utf-8", kind="html", source=CharsetSource.DETECTED),
    ]


CORPUS = _corpus()


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 60


@pytest.mark.parametrize(("content", "content_type", "kind", "text", "source", "codec"), CORPUS)
def test_golden_corpus(content, content_type, kind, text, source, codec) -> None:
    decoded = decode_document(content, content_type, kind)
    assert decoded.text == text
    assert "\ufffd" not in decoded.text
    assert (decoded.source, decoded.encoding) == (source, codec)


def test_wave_dash_as_each_codec_gives_it() -> None:
    assert decode_document(b"\x81\x60", "text/plain; charset=Shift_JIS", "text").text == "\uff5e"  # ～
    assert decode_document(b"\xa1\xc1", "text/plain; charset=EUC-JP", "text").text == "\u301c"  # 〜
    assert decode_document(b"\x1b$B!A\x1b(B", "text/plain; charset=ISO-2022-JP", "text").text == "\u301c"
    assert decode_document("〜".encode(), "text/plain; charset=utf-8", "text").text == "\u301c"


def test_damaged_text_falls_back_to_the_best_reading_with_replacements() -> None:
    cut = PROSE.encode("euc_jp")[:-1]  # the last character cut in half, nothing declared
    decoded = decode_document(cut, None, "text")
    assert (decoded.source, decoded.encoding) == (CharsetSource.FALLBACK, "euc_jp")
    assert decoded.text == PROSE[:-1] + "\ufffd"
    broken = PROSE.encode()[:30] + b"\xff" + PROSE.encode()[30:]
    decoded = decode_document(broken, "text/html; charset=utf-8", "html")
    assert (decoded.source, decoded.encoding) == (CharsetSource.FALLBACK, "utf-8")
    assert decoded.text.count("\ufffd") == 1


def test_detection_only_ever_picks_our_encodings() -> None:
    ours = {"utf-8", "cp932", "euc_jp", "euc_jis_2004", "iso2022_jp", "iso2022_jp_ext"}
    for text, codec in [("中文测试页面", "gb18030"), ("中文測試頁面", "big5"), ("한국어 시험", "cp949"),
                        ("Ünïcödé façade", "latin-1")]:
        assert decode_document(text.encode(codec), None, "html").encoding in ours


@settings(max_examples=300, deadline=None)
@given(content=st.binary(max_size=2048), header=st.one_of(st.none(), st.text(max_size=60)),
       kind=st.sampled_from(["html", "xml", "csv", "text"]))
def test_never_raises(content: bytes, header: str | None, kind: str) -> None:
    decoded = decode_document(content, header, kind)
    assert isinstance(decoded.text, str) and decoded.source in set(CharsetSource)


@pytest.mark.parametrize(("body", "content_type"), [
    (html(CP932_ONLY).encode("cp932"), "text/html; charset=Shift_JIS"),
    (html(PROSE, '<meta charset="euc-jp">').encode("euc_jp"), "text/html"),
    (html(PROSE).encode("euc_jp"), "text/html"),
    (html(PROSE).encode("utf-8"), "text/html; charset=utf-8"),
], ids=["cp932-header", "euc-meta", "euc-undeclared", "utf-8"])
def test_fetched_pages_decode_end_to_end(body, content_type, server, make_fetcher) -> None:
    path = f"/charset/{body[-40:].hex()}"
    server.route(path)(lambda request: request.reply(200, body, {"Content-Type": content_type}))
    result = make_fetcher().fetch(server.url(path))
    decoded = decode_document(result.content, result.content_type, "html")
    assert decoded.text in (html(CP932_ONLY), html(PROSE), html(PROSE, '<meta charset="euc-jp">'))
    assert "\ufffd" not in decoded.text
