"""Uploaded files (web form, ``library import``) → record drafts, by content first and file name second.

A file of records (CSV, JSON, JSONL) keeps its good records: each unusable one is reported with its line
(or item) number in ``ParsedUpload.errors`` and left out, so an upload never loses good lines, and uploading
the corrected file again adds only what was missing (the pipeline finds the others again). A file that
cannot be read at all (not JSON, unknown CSV headers, a broken PDF, no record) raises ``ParseError``. Record
fields an uploaded JSON record carries (``id``, ``source``, ``provenance`` …) are kept for the pipeline to
decide on. The caller limits the size.

An HTML or PDF file is one document: one draft of the kind the uploader chose (``page`` by default). Its URL
is the one given, else (HTML) the one the document declares, else ``fallback_url`` (the library's own copy,
``crawlers.uploads``), which may be a function of the document's ``ParsedUpload.document_key``: the key of its
text, the same for the document in any encoding. HTML is reduced to its text; nothing of its markup reaches a
draft.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any, get_origin

from pypdf import PasswordType, PdfReader

from crawlers.charset import content_key, decode_document
from crawlers.parse.errors import ParseError
from crawlers.parse.html import document_url, extract_html
from crawlers.parse.opendata import UnknownDataset, parse_opendata_csv
from crawlers.parse.text import BODY_MAX, LINE_MAX, clip, one_line, tidy
from crawlers.parse.urls import absolute_http_url, site_of
from schemas import KIND_MODELS, KINDS, RecordValidationError, validate_record

# Only for validating a draft here: every kind accepts "citizen" (contribution accepts nothing else).
_PLACEHOLDER_PROVENANCE = "citizen"
_LIST_SEPARATOR = ";"  # list fields (tags, categories, jan_codes …) in a CSV cell, as open data writes them
_FIELDS = {name: info for model in KIND_MODELS.values() for name, info in model.model_fields.items()}
_LIST_FIELDS = frozenset(name for name, info in _FIELDS.items() if get_origin(info.annotation) is list)
# Fields a document (HTML, PDF) can fill: the kinds it may become are those that require nothing else.
_DOCUMENT_FIELDS = frozenset({"kind", "title", "body", "url", "provenance", "organizer"})
DOCUMENT_KINDS: tuple[str, ...] = tuple(
    kind for kind in KINDS
    if {name for name, info in KIND_MODELS[kind].model_fields.items() if info.is_required()} <= _DOCUMENT_FIELDS
)
# Only to resolve a document's relative links when it has no URL of its own; never stored.
_NO_URL = "https://upload.invalid/"
# A URL, or the URL for a document key.
FallbackURL = str | Callable[[str], str | None] | None


@dataclass(frozen=True)
class ParsedUpload:
    drafts: list[dict]
    errors: list[str] = field(default_factory=list)
    """One Japanese line per record left out, starting with where it is ("3 行目", "2 件目")."""
    document_key: str | None = None
    """An HTML or PDF document's ``crawlers.charset.content_key`` of its title and text; None for records."""


def parse_upload(filename: str, content: bytes, *, url: str | None = None, kind: str = "page",
                 organizer: str | None = None, fallback_url: FallbackURL = None) -> ParsedUpload:
    """Drafts from a CSV, JSON, JSONL, HTML or PDF file.

    ``kind``, ``url`` and ``fallback_url`` apply to HTML and PDF documents (see the module doc);
    ``organizer`` is the organizer of program records that name none (an event CSV without the column, a
    document uploaded as a ``program``).
    """
    suffix = PurePath(filename).suffix.lower()
    if content.lstrip()[:5] == b"%PDF-" or suffix == ".pdf":
        title, text = _pdf_text(content)
        return _one_document(title, text, None, kind, url, organizer, fallback_url)
    if content[:4] == b"PK\x03\x04" or suffix in (".xlsx", ".xls", ".ods"):
        raise ParseError(
            "表計算ソフトのファイルは読めません。CSV（UTF-8）で保存してからアップロードしてください"
        )
    if suffix in (".html", ".htm", ".xhtml"):
        return _html(content, kind, url, organizer, fallback_url)
    if suffix == ".json":
        return _checked(_json(_text(content)))
    if suffix in (".jsonl", ".ndjson"):
        return _checked(_jsonl(_text(content)))
    if suffix == ".csv":
        return _csv(content, organizer)
    return _sniffed(content, filename, kind, url, organizer, fallback_url)


def _sniffed(content: bytes, filename: str, kind: str, url: str | None, organizer: str | None,
             fallback_url: FallbackURL) -> ParsedUpload:
    """No telling extension: the first character decides."""
    text = _text(content).lstrip()
    if text.startswith("<"):
        return _html(content, kind, url, organizer, fallback_url)
    if text.startswith("["):
        return _checked(_json(text))
    if text.startswith("{"):
        # One object is JSON; several lines of objects are JSONL.
        try:
            records = _json(text)
        except ParseError:
            records = _jsonl(text)
        return _checked(records)
    raise ParseError(f"{filename} の形式がわかりません（CSV・JSON・JSONL・HTML・PDF に対応しています）")


def _text(content: bytes) -> str:
    return decode_document(content, None, "text").text


# A record file's items: where each is ("3 行目"), and the record, or why it is unusable.
_Items = list[tuple[str, dict | str]]


def _json(text: str) -> _Items:
    try:
        data = json.loads(text)
    except RecursionError:
        raise ParseError("JSON の入れ子が深すぎます") from None
    except ValueError as exc:
        raise ParseError(f"JSON として読めません: {exc}") from None
    records = data if isinstance(data, list) else [data]
    return [(f"{number} 件目", _object(record)) for number, record in enumerate(records, start=1)]


def _jsonl(text: str) -> _Items:
    items: _Items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            record = "JSON の入れ子が深すぎます"
        except ValueError as exc:
            record = f"JSON として読めません: {exc}"
        else:
            record = _object(record)
        items.append((f"{number} 行目", record))
    return items


def _object(record: Any) -> dict | str:
    return record if isinstance(record, dict) else "レコードはオブジェクト（{...}）で書いてください"


def _checked(items: _Items) -> ParsedUpload:
    """The records that validate (with a placeholder provenance when they have none), and why the others
    do not."""
    drafts, errors = [], []
    for where, record in items:
        if isinstance(record, str):
            errors.append(f"{where}: {record}")
            continue
        try:
            validate_record({"provenance": _PLACEHOLDER_PROVENANCE, **record})
        except RecordValidationError as exc:
            errors.append(f"{where}: {exc}")
            continue
        drafts.append(record)
    if not items:
        raise ParseError("レコードが 1 件もありません")
    return ParsedUpload(drafts, errors)


def _csv(content: bytes, organizer: str | None) -> ParsedUpload:
    """自治体標準オープンデータセット if the headers say so, else a CSV whose headers are record fields."""
    try:
        result = parse_opendata_csv(content, organizer=organizer)
    except UnknownDataset:
        return _checked(_generic_csv(_text(content)))
    if not result.drafts and not result.errors:
        raise ParseError("レコードが 1 件もありません")
    return ParsedUpload(result.drafts, [str(error) for error in result.errors])


def _generic_csv(text: str) -> _Items:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    try:
        start = 1
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((start, row))
            start = reader.line_num + 1  # a quoted cell may span lines: the next row starts after them
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise ParseError(f"CSV として読めません（{reader.line_num} 行目）: {exc}") from None
    if not rows:
        raise ParseError("CSV が空です")
    header = [name.strip().lower() for name in rows[0][1]]
    unknown = [name for name in header if name not in _FIELDS]
    if unknown:
        raise ParseError(f"見出しにレコードの項目名でない列があります: {'、'.join(unknown[:10])}")
    if "kind" not in header:
        raise ParseError("見出しに kind（種別）の列がありません")
    items: _Items = []
    for line, row in rows[1:]:
        draft: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=False):
            if not (value := cell.strip()):
                continue
            if name in _LIST_FIELDS:
                draft[name] = [item.strip() for item in value.split(_LIST_SEPARATOR)]
            else:
                draft[name] = value
        extra = [cell for cell in row[len(header):] if cell.strip()]
        items.append((f"{line} 行目", f"見出し（{len(header)} 列）より多い {len(row)} 列があります" if extra else draft))
    return items


def _html(content: bytes, kind: str, url: str | None, organizer: str | None,
          fallback_url: FallbackURL) -> ParsedUpload:
    own = (absolute_http_url(url) if url else None) or document_url(content)
    page = extract_html(content, url=own or _NO_URL)
    return _one_document(page.title, page.text, page.published_at, kind, own, organizer, fallback_url)


def _one_document(title: str, text: str, published_at: datetime | None, kind: str, url: str | None,
                  organizer: str | None, fallback_url: FallbackURL) -> ParsedUpload:
    key = content_key(title, text)
    fallback = fallback_url(key) if callable(fallback_url) else fallback_url
    return ParsedUpload([_document(title, text, published_at, kind, url, organizer, fallback)], document_key=key)


def _document(title: str, text: str, published_at: datetime | None, kind: str, url: str | None,
              organizer: str | None, fallback_url: str | None) -> dict:
    """One draft of ``kind`` from a document's title, text and publication time."""
    if kind not in DOCUMENT_KINDS:
        raise ParseError(f"HTML・PDF から作れる種別は {'、'.join(DOCUMENT_KINDS)} です: {kind}")
    page_url = absolute_http_url(url) if url else None
    if page_url is None and kind == "page":
        page_url = absolute_http_url(fallback_url) if fallback_url else None
        if page_url is None:
            raise ParseError("ウェブページ（page）として取り込むには URL が必要です")
    first_line = text.split("\n", 1)[0]
    draft: dict[str, Any] = {"kind": kind, "title": clip(title or first_line or page_url or "無題", LINE_MAX),
                             "body": clip(text, BODY_MAX)}
    if page_url:
        draft["url"] = page_url
    if kind == "page":
        draft["site"] = site_of(page_url)
    if kind == "program":
        if not organizer:
            raise ParseError("催し（program）として取り込むには主催者（取得元の組織名）が必要です")
        draft["organizer"] = clip(one_line(organizer), LINE_MAX)
    if published_at:
        draft["published_at"] = published_at.isoformat()
    return draft


def _pdf_text(content: bytes) -> tuple[str, str]:
    """The PDF's title (metadata) and text. An encrypted PDF is read only if it opens without a password
    (many are encrypted just to forbid editing)."""
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ParseError("パスワードで保護された PDF は読めません")
        title = (reader.metadata.title if reader.metadata else None) or ""
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except ParseError:
        raise
    except Exception as exc:  # pypdf raises many types on broken or hostile files; each means "unreadable"
        reason = type(exc).__name__
        raise ParseError(f"PDF を読めません（壊れているか、対応していない形式です）: {reason}") from exc
    return one_line(str(title)), tidy(text)
