"""Bytes to text for crawled documents, under a Japanese charset policy (RELIABILITY T15).

Order of rules, first one whose encoding decodes the bytes without error wins:

1. ``header``: the charset parameter of the HTTP Content-Type.
2. ``bom``: a UTF-8 or UTF-16 byte order mark.
3. ``meta``: ``<meta charset>`` or ``<meta http-equiv="Content-Type">`` in the first 1024 bytes (HTML), or
   ``xml-declaration``: ``<?xml ... encoding=...?>`` (XML, and XHTML served as HTML).
4. ``detected``: ISO-2022-JP if it has its escape sequences (it is 7-bit, so it would pass as UTF-8), then
   strict UTF-8, then the best reading as cp932 or EUC-JP: the text that looks most like Japanese
   (hiragana, common kanji) rather than like the other codec read wrongly (half-width katakana,
   private-use characters). Nothing else is considered: general detectors guess Big5, cp949 or GB18030
   for short Japanese text (charset_normalizer did, for 14 and 56 bytes).
5. ``fallback``: the best reading needed errors="replace". Damaged candidates (the declared encodings,
   cp932, EUC-JP, UTF-8) are ranked with the clean ones, each U+FFFD costing points. Never raises.

Decisions:

* A declaration the bytes contradict is skipped, not obeyed: Japanese sites often send a wrong header
  (a server default) in front of a correct meta or an undeclared EUC-JP/Shift_JIS body. When the header
  and the meta both decode the bytes, the header wins.
* Shift_JIS labels (shift_jis, sjis, x-sjis, windows-31j, ...) mean cp932, as in WHATWG and browsers, so
  ①, ㈱ and IBM extensions such as 髙 decode. EUC-JP falls back to euc_jis_2004 for NEC row 13 (①, ㈱).
* Labels outside UTF-8/UTF-16 and the Japanese encodings (iso-8859-1, windows-1252, gb2312, ...) are
  ignored: on Japanese sites they are server defaults far more often than the truth.
* Wave dashes are left as the codec gives them; search normalises them. cp932 gives U+FF5E (～) for
  0x8160, EUC-JP and ISO-2022-JP give U+301C (〜) for the same JIS character. ``content_key`` folds these
  differences, so one document decoded from either encoding has one key (dedupe by content).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Kind = Literal["html", "xml", "csv", "text"]


class CharsetSource(StrEnum):
    HEADER = "header"
    BOM = "bom"
    META = "meta"
    XML_DECLARATION = "xml-declaration"
    DETECTED = "detected"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str  # the Python codec that produced text
    source: CharsetSource


# Encoding families we accept, each with the codecs tried in order.
_CODECS = {
    "utf-8": ("utf-8",),
    "utf-16": ("utf-16",),
    "utf-16-le": ("utf-16-le",),
    "utf-16-be": ("utf-16-be",),
    "cp932": ("cp932",),
    "euc_jp": ("euc_jp", "euc_jis_2004"),
    "iso2022_jp": ("iso2022_jp", "iso2022_jp_ext"),
}
_LABELS = {
    **dict.fromkeys(("utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8",
                     "x-unicode20utf8"), "utf-8"),
    **dict.fromkeys(("utf-16", "unicode", "ucs-2", "csunicode"), "utf-16"),
    **dict.fromkeys(("utf-16le", "utf-16-le"), "utf-16-le"),
    **dict.fromkeys(("utf-16be", "utf-16-be", "unicodefffe"), "utf-16-be"),
    **dict.fromkeys(("shift_jis", "shift-jis", "sjis", "x-sjis", "windows-31j", "ms_kanji", "ms932", "cp932",
                     "x-ms-cp932", "csshiftjis", "cswindows31j"), "cp932"),
    **dict.fromkeys(("euc-jp", "euc_jp", "eucjp", "x-euc-jp", "cseucpkdfmtjapanese", "ujis"), "euc_jp"),
    **dict.fromkeys(("iso-2022-jp", "iso2022jp", "iso2022_jp", "csiso2022jp", "jis"), "iso2022_jp"),
}
# The JIS characters cp932 decodes to other code points than EUC-JP and ISO-2022-JP do, to the latter's:
# ～ ∥ － ￠ ￡ ￢ → 〜 ‖ − ¢ £ ¬ (Python's cp932 encodes both forms, so UTF-8 text may hold either).
_CP932_VARIANTS = str.maketrans("\uff5e\u2225\uff0d\uffe0\uffe1\uffe2", "\u301c\u2016\u2212\u00a2\u00a3\u00ac")
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_PRESCAN_BYTES = 1024
_ISO2022_ESCAPES = (b"\x1b$@", b"\x1b$B", b"\x1b(B", b"\x1b(J", b"\x1b(I")
_REPLACEMENT_COST = 10  # a U+FFFD outweighs several plausible characters

_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([^"';\s]+)""", re.IGNORECASE)
_META_TAG = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)
_META_CHARSET = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(rb"\A\s*<\?xml\b[^>]*>")
_XML_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def decode_document(content: bytes, content_type_header: str | None, kind: Kind) -> DecodedText:
    """Decode a fetched document by the policy above. Never raises on bad bytes."""
    declared = list(_declarations(content, content_type_header, kind))
    for family, source in declared:
        if decoded := _strict(content, family):
            return _result(decoded, source)
    if _has_iso2022_escapes(content) and (decoded := _strict(content, "iso2022_jp")):
        return _result(decoded, CharsetSource.DETECTED)
    if decoded := _strict(content, "utf-8"):
        return _result(decoded, CharsetSource.DETECTED)
    return _best_reading(content, [family for family, _ in declared])


def content_key(title: str, text: str) -> str:
    """sha256 of a document's extracted title and text, the same whichever Japanese encoding it came in."""
    return hashlib.sha256(f"{title}\n{text}".translate(_CP932_VARIANTS).encode()).hexdigest()


def charset_family(label: str) -> str | None:
    """Our encoding family for a charset label, or None when the label is ignored."""
    return _LABELS.get(label.strip().strip("\"'").lower())


def _declarations(content: bytes, content_type_header: str | None, kind: Kind
                  ) -> Iterator[tuple[str, CharsetSource]]:
    if family := _header_charset(content_type_header):
        yield family, CharsetSource.HEADER
    for bom, family in _BOMS:
        if content.startswith(bom):
            yield family, CharsetSource.BOM
    head = content[:_PRESCAN_BYTES]
    if kind == "html" and (label := _meta_charset(head)):
        yield from _in_band(label, CharsetSource.META)
    if kind in ("html", "xml") and (label := _xml_encoding(head)):
        yield from _in_band(label, CharsetSource.XML_DECLARATION)


def _header_charset(content_type_header: str | None) -> str | None:
    match = _HEADER_CHARSET.search(content_type_header or "")
    return charset_family(match.group(1)) if match else None


def _in_band(label: bytes, source: CharsetSource) -> Iterator[tuple[str, CharsetSource]]:
    family = charset_family(label.decode("ascii"))
    if family is not None:
        # A declaration readable as ASCII cannot be in UTF-16 (WHATWG reads it as UTF-8).
        yield ("utf-8" if family.startswith("utf-16") else family), source


def _meta_charset(head: bytes) -> bytes | None:
    for tag in _META_TAG.finditer(head):
        if match := _META_CHARSET.search(tag.group()):
            return match.group(1)
    return None


def _xml_encoding(head: bytes) -> bytes | None:
    if (declaration := _XML_DECLARATION.match(head)) and (match := _XML_ENCODING.search(declaration.group())):
        return match.group(1)
    return None


def _strict(content: bytes, family: str) -> tuple[str, str] | None:
    for codec in _CODECS[family]:
        try:
            return content.decode(codec), codec
        except UnicodeDecodeError:
            continue
    return None


def _has_iso2022_escapes(content: bytes) -> bool:
    return content.isascii() and any(escape in content for escape in _ISO2022_ESCAPES)


def _best_reading(content: bytes, declared: list[str]) -> DecodedText:
    """The candidate that reads most like Japanese: strict cp932 or EUC-JP decodes are "detected", a
    damaged text decoded with replacement characters is the "fallback"."""
    iso2022 = ["iso2022_jp"] if _has_iso2022_escapes(content) else []
    families = dict.fromkeys([*declared, *iso2022, "cp932", "euc_jp", "utf-8"])
    candidates = [_candidate(content, family) for family in families]
    # max() keeps the first of equals: a declared family, then cp932, the most common on the Japanese web.
    text, codec, strict = max(candidates, key=_rank)
    return _result((text, codec), CharsetSource.DETECTED if strict else CharsetSource.FALLBACK)


def _candidate(content: bytes, family: str) -> tuple[str, str, bool]:
    if decoded := _strict(content, family):
        return *decoded, True
    codec = _CODECS[family][0]
    return content.decode(codec, errors="replace"), codec, False


def _rank(candidate: tuple[str, str, bool]) -> tuple[int, bool]:
    text, _, strict = candidate
    return _plausibility(text) - _REPLACEMENT_COST * text.count("\ufffd"), strict


def _plausibility(text: str) -> int:
    return sum(_char_score(char) for char in text)


@functools.lru_cache(maxsize=8192)
def _char_score(char: str) -> int:
    code = ord(char)
    if code < 0x80:
        return 0
    if 0x3041 <= code <= 0x309F:  # hiragana: the backbone of Japanese prose
        return 3
    if 0x30A0 <= code <= 0x30FF or 0x3000 <= code <= 0x303F:  # katakana, Japanese punctuation
        return 2
    if 0x4E00 <= code <= 0x9FFF:
        return _kanji_score(char)
    if 0xFF61 <= code <= 0xFF9F:  # half-width katakana: what EUC-JP looks like read as cp932
        return -2
    if 0xE000 <= code <= 0xF8FF or code <= 0x9F:  # private use, C1 controls: wrong-codec debris
        return -3
    return 0


def _kanji_score(char: str) -> int:
    """JIS level 1 kanji (EUC-JP rows 16-47) are the common ones; a wrong codec mostly yields others."""
    try:
        lead = char.encode("euc_jp")[0]
    except UnicodeEncodeError:
        return 0
    return 2 if 0xB0 <= lead <= 0xCF else 1


def _result(decoded: tuple[str, str], source: CharsetSource) -> DecodedText:
    text, codec = decoded
    return DecodedText(text.removeprefix("\ufeff"), codec, source)
