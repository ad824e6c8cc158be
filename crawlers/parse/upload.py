"""Uploaded files (web form, ``library import``) → record drafts, by content first and file name second.

An upload is all or nothing: a file with any unusable record raises ``ParseError`` listing the first
problems, so an editor fixes the file and uploads it again instead of finding half of it imported. Record
fields an uploaded JSON record carries (``id``, ``source``, ``provenance`` …) are kept for the pipeline to
decide on. The caller limits the size.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import PurePath
from typing import Any, get_origin

from pypdf import PasswordType, PdfReader

from crawlers.charset import decode_document
from crawlers.parse.errors import ParseError
from crawlers.parse.html import document_url, extract_html, page_draft
from crawlers.parse.opendata import UnknownDataset, parse_opendata_csv
from crawlers.parse.text import BODY_MAX, LINE_MAX, clip, one_line, tidy
from crawlers.parse.urls import absolute_http_url, site_of
from schemas import KIND_MODELS, RecordValidationError, validate_record

MAX_LISTED_PROBLEMS = 10
# Only for validating a draft here: every kind accepts "citizen" (contribution accepts nothing else).
_PLACEHOLDER_PROVENANCE = "citizen"
_LIST_SEPARATOR = ";"  # list fields (tags, categories, jan_codes …) in a CSV cell, as open data writes them
_FIELDS = {name: info for model in KIND_MODELS.values() for name, info in model.model_fields.items()}
_LIST_FIELDS = frozenset(name for name, info in _FIELDS.items() if get_origin(info.annotation) is list)


def parse_upload(filename: str, content: bytes, *, url: str | None = None) -> list[dict]:
    """Drafts from a CSV, JSON, JSONL, HTML or PDF file.

    HTML and PDF become ``page`` drafts, which need a URL: ``url`` if given, else (HTML only) the URL the
    document declares for itself (``<link rel=canonical>``, ``og:url``).
    """
    suffix = PurePath(filename).suffix.lower()
    if content.lstrip()[:5] == b"%PDF-" or suffix == ".pdf":
        return [_pdf(content, url)]
    if content[:4] == b"PK\x03\x04" or suffix in (".xlsx", ".xls", ".ods"):
        raise ParseError(
            "表計算ソフトのファイルは読めません。CSV（UTF-8）で保存してからアップロードしてください"
        )
    if suffix in (".html", ".htm", ".xhtml"):
        return [_html(content, url)]
    if suffix == ".json":
        return _checked(_json(_text(content)))
    if suffix in (".jsonl", ".ndjson"):
        return _checked(_jsonl(_text(content)))
    if suffix == ".csv":
        return _csv(content)
    return _sniffed(content, url, filename)


def _sniffed(content: bytes, url: str | None, filename: str) -> list[dict]:
    """No telling extension: the first character decides."""
    text = _text(content).lstrip()
    if text.startswith("<"):
        return [_html(content, url)]
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


def _json(text: str) -> list[dict]:
    try:
        data = json.loads(text)
    except RecursionError:
        raise ParseError("JSON の入れ子が深すぎます") from None
    except ValueError as exc:
        raise ParseError(f"JSON として読めません: {exc}") from None
    records = data if isinstance(data, list) else [data]
    return [_object(record, f"{number} 件目") for number, record in enumerate(records, start=1)]


def _jsonl(text: str) -> list[dict]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except RecursionError:
            raise ParseError(f"{number} 行目: JSON の入れ子が深すぎます") from None
        except ValueError as exc:
            raise ParseError(f"{number} 行目: JSON として読めません: {exc}") from None
        records.append(_object(record, f"{number} 行目"))
    return records


def _object(record: Any, where: str) -> dict:
    if not isinstance(record, dict):
        raise ParseError(f"{where}: レコードはオブジェクト（{{...}}）で書いてください")
    return record


def _checked(drafts: list[dict]) -> list[dict]:
    """The drafts, if every one validates (with a placeholder provenance when it has none)."""
    problems = []
    for number, draft in enumerate(drafts, start=1):
        try:
            validate_record({"provenance": _PLACEHOLDER_PROVENANCE, **draft})
        except RecordValidationError as exc:
            problems.append(f"{number} 件目: {exc}")
    if problems:
        raise ParseError(_listed(problems))
    if not drafts:
        raise ParseError("レコードが 1 件もありません")
    return drafts


def _listed(problems: list[str]) -> str:
    shown = "\n".join(problems[:MAX_LISTED_PROBLEMS])
    rest = len(problems) - MAX_LISTED_PROBLEMS
    return shown + (f"\nほか {rest} 件" if rest > 0 else "")


def _csv(content: bytes) -> list[dict]:
    """自治体標準オープンデータセット if the headers say so, else a CSV whose headers are record fields."""
    try:
        result = parse_opendata_csv(content)
    except UnknownDataset:
        return _checked(_generic_csv(_text(content)))
    if result.errors:
        raise ParseError(_listed([str(error) for error in result.errors]))
    if not result.drafts:
        raise ParseError("レコードが 1 件もありません")
    return result.drafts


def _generic_csv(text: str) -> list[dict]:
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if any(cell.strip() for cell in row)]
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise ParseError(f"CSV として読めません: {exc}") from None
    if not rows:
        raise ParseError("CSV が空です")
    header = [name.strip().lower() for name in rows[0]]
    unknown = [name for name in header if name not in _FIELDS]
    if unknown:
        raise ParseError(f"見出しにレコードの項目名でない列があります: {'、'.join(unknown[:10])}")
    if "kind" not in header:
        raise ParseError("見出しに kind（種別）の列がありません")
    drafts = []
    for row in rows[1:]:
        draft: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=False):
            if not (value := cell.strip()):
                continue
            if name in _LIST_FIELDS:
                draft[name] = [item.strip() for item in value.split(_LIST_SEPARATOR)]
            else:
                draft[name] = value
        drafts.append(draft)
    return drafts


def _html(content: bytes, url: str | None) -> dict:
    page_url = (absolute_http_url(url) if url else None) or document_url(content)
    if page_url is None:
        raise ParseError("HTML をページとして取り込むには URL が必要です（canonical リンクもありません）")
    return page_draft(extract_html(content, url=page_url))


def _pdf(content: bytes, url: str | None) -> dict:
    page_url = absolute_http_url(url) if url else None
    if page_url is None:
        raise ParseError("PDF をページとして取り込むには、その PDF の URL が必要です")
    title, text = _pdf_text(content)
    return {
        "kind": "page",
        "title": clip(title or text.split("\n", 1)[0] or page_url, LINE_MAX),
        "body": clip(text, BODY_MAX),
        "url": page_url,
        "site": site_of(page_url),
    }


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
