"""Uploads (issue 4, RELIABILITY T23): a file from the web form or ``library import`` becomes an upload source.

The policy, in the order a file meets it:

* **Type by content.** PDF is told by its magic bytes; CSV, JSON, JSONL and HTML must be text (no NUL byte)
  and look like what their extension says. Archives, office files, images and executables are refused by
  their magic bytes whatever their name: nothing compressed is ever opened (T23).
* **Size.** At most the fetcher's cap for the type (5 MiB HTML, 20 MiB CSV and PDF, ``FetchPolicy``), the
  same cap the pipeline reads the file with.
* **Generated names.** The bytes are kept as ``<data dir>/uploads/<sha256>.<type>``: the client's file name
  is a display name only and never becomes a path (``../../x`` changes nothing), and the same bytes uploaded
  twice are one file and one source, crawled again (every record "unchanged").
* **One record namespace.** Every upload source tags its records ``source="upload"`` (``UPLOAD_TAG``), so a
  record is found again by its external id, URL or content hash whichever upload brings it: uploading a
  corrected file updates or keeps records instead of duplicating them.
* **Documents.** An HTML or PDF file is one record of the kind the uploader chooses (``page`` by default).
  Its ``url`` is the one given, else the one the HTML declares (canonical, og:url), else the library's own
  copy: the record's page in the library (``own_copy_url``), since a ``page`` record needs an http(s) URL;
  such a record is keyed by its extracted title and text (``crawlers.charset.content_key``), not by the
  file's bytes, so the same document uploaded in cp932 and in EUC-JP (or re-saved) is one record. The
  library never serves the uploaded file: HTML is reduced to text by the parser, and the record page shows
  that text, escaped.

Dependencies point one way (DESIGN): this module cannot ask the web app for its record route, so
``RECORD_PAGE_PATH`` states it, and the web tests check that it answers.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath
from typing import get_args

from sqlalchemy import select

from crawlers.charset import decode_document
from crawlers.parse.text import one_line
from crawlers.parse.upload import DOCUMENT_KINDS
from crawlers.parse.urls import absolute_http_url
from crawlers.policy import FetchPolicy
from indexer.ingest import new_record_id
from indexer.store import SourceKind, SourceRow, Store
from indexer.store.models import utcnow
from schemas import Provenance

UPLOAD_TAG = "upload"
UPLOAD_DIR = "uploads"
RECORD_PAGE_PATH = "/records/{record_id}"  # search_app.views.record
PUBLIC_URL_ENV = "LIBRARY_PUBLIC_URL"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"  # where `library serve` listens by default
NAME_MAX = 200  # SourceRow.name
OWN_COPY_KEY_PREFIX = "text-sha256:"  # the external id of a document at its own copy: its text key

# Magic bytes of files we never open, with what to tell the uploader.
_REFUSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "ZIP 形式（Excel・Word などを含む）"),
    (b"PK\x05\x06", "ZIP 形式"),
    (b"\x1f\x8b", "gzip 圧縮"),
    (b"BZh", "bzip2 圧縮"),
    (b"\xfd7zXZ\x00", "xz 圧縮"),
    (b"7z\xbc\xaf\x27\x1c", "7z 圧縮"),
    (b"Rar!", "RAR 圧縮"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "古い Office 形式（.xls・.doc）"),
    (b"\x89PNG", "PNG 画像"),
    (b"\xff\xd8\xff", "JPEG 画像"),
    (b"GIF8", "GIF 画像"),
    (b"MZ", "実行ファイル"),
    (b"\x7fELF", "実行ファイル"),
)
_PROVENANCES: tuple[str, ...] = get_args(Provenance)


class UploadType(StrEnum):
    PDF = "pdf"
    HTML = "html"
    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"


_SUFFIXES = {
    ".pdf": UploadType.PDF, ".html": UploadType.HTML, ".htm": UploadType.HTML, ".xhtml": UploadType.HTML,
    ".csv": UploadType.CSV, ".json": UploadType.JSON, ".jsonl": UploadType.JSONL, ".ndjson": UploadType.JSONL,
}


class UploadRefused(ValueError):
    """The file is not one we accept; the message is Japanese and meant for the uploader."""


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    sha256: str
    type: UploadType
    size: int


def display_name(filename: str) -> str:
    """The client's file name as a label: its last component, on one line, never a path."""
    name = PurePath(filename.replace("\\", "/")).name
    return one_line(name)[:NAME_MAX] or "upload"


def size_cap(upload_type: UploadType) -> int:
    return FetchPolicy().size_cap(mimetypes.guess_type(f"file.{upload_type}")[0])


def detect_type(filename: str, content: bytes) -> UploadType:
    """What the file is, from its bytes first; raises UploadRefused."""
    if not content.strip():
        raise UploadRefused("ファイルが空です")
    head = content[:16]
    for magic, what in _REFUSED_MAGIC:
        if head.startswith(magic):
            raise UploadRefused(f"{what}のファイルは受け付けません。CSV・JSON・JSONL・HTML・PDF にしてください")
    claimed = _SUFFIXES.get(PurePath(filename).suffix.lower())
    if content.lstrip()[:5] == b"%PDF-":
        if claimed not in (None, UploadType.PDF):
            raise UploadRefused(f"拡張子は {claimed} ですが、中身は PDF です")
        return UploadType.PDF
    if claimed is UploadType.PDF:
        raise UploadRefused("拡張子は pdf ですが、PDF ではありません")
    if b"\x00" in content[:65536] and not content.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UploadRefused("テキストでないファイルは受け付けません（CSV・JSON・JSONL・HTML・PDF に対応しています）")
    text = decode_document(content[:65536], None, "text").text.lstrip("\ufeff \t\r\n")
    sniffed = UploadType.HTML if text.startswith("<") else UploadType.JSON if text[:1] in "[{" else None
    if claimed is None:
        if sniffed is None:
            raise UploadRefused("ファイルの形式がわかりません（拡張子 .csv・.json・.jsonl・.html・.pdf を付けてください）")
        if sniffed is UploadType.JSON and text.startswith("{") and "\n{" in text.strip():
            return UploadType.JSONL
        return sniffed
    if claimed is UploadType.HTML and sniffed is not UploadType.HTML:
        raise UploadRefused("拡張子は html ですが、HTML ではありません")
    if claimed in (UploadType.JSON, UploadType.JSONL) and sniffed is not UploadType.JSON:
        raise UploadRefused(f"拡張子は {claimed} ですが、JSON ではありません")
    return claimed


def store_upload(data_dir: Path, filename: str, content: bytes) -> StoredUpload:
    """Check the file and keep it under its content hash; raises UploadRefused."""
    upload_type = detect_type(filename, content)
    cap = size_cap(upload_type)
    if len(content) > cap:
        raise UploadRefused(f"ファイルが大きすぎます（{upload_type} の上限は {cap // (1024 * 1024)} MiB）")
    digest = hashlib.sha256(content).hexdigest()
    directory = data_dir / UPLOAD_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{digest}.{upload_type}"
    if not path.is_file():
        # Written whole, then renamed: a crash never leaves a half file under a name that claims a hash.
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return StoredUpload(path, digest, upload_type, len(content))


def public_url_from_env(environ: dict[str, str] | None = None, default: str = DEFAULT_PUBLIC_URL) -> str:
    """Where citizens reach this library (LIBRARY_PUBLIC_URL), else ``default``: the web form passes the
    request's own root, the CLI the address `library serve` listens on by default. The setting wins, so a
    forged Host header cannot put its host into records."""
    env = os.environ if environ is None else environ
    raw = env.get(PUBLIC_URL_ENV, "").strip() or default
    url = absolute_http_url(raw)
    if url is None:
        raise UploadRefused(f"{PUBLIC_URL_ENV}={raw!r} は http または https の URL ではありません")
    return url


def own_copy_url(public_url: str, kind: str, document_key: str) -> str:
    """The record page of the record an uploaded document without a URL becomes (its id is derived from
    the upload tag and the document's text key, ``ParsedUpload.document_key``, as ``indexer.ingest``
    derives it)."""
    record_id = new_record_id({"kind": kind, "source": UPLOAD_TAG, "external_id": own_copy_key(document_key)})
    return public_url.rstrip("/") + RECORD_PAGE_PATH.format(record_id=record_id)


def own_copy_key(document_key: str) -> str:
    return OWN_COPY_KEY_PREFIX + document_key


def add_upload_source(
    store: Store,
    data_dir: Path,
    filename: str,
    content: bytes,
    *,
    provenance: str,
    public_url: str,
    organization: str | None = None,
    kind: str = "page",
    url: str | None = None,
) -> SourceRow:
    """Store the file and the upload source that reads it (the existing one for the same bytes, updated
    to this upload's settings); raises UploadRefused. Crawl the source to import the file."""
    if provenance not in _PROVENANCES:
        raise UploadRefused(f"内容の責任者は {', '.join(_PROVENANCES)} のいずれかです: {provenance}")
    if kind not in DOCUMENT_KINDS:
        raise UploadRefused(f"HTML・PDF から作れる種別は {', '.join(DOCUMENT_KINDS)} のいずれかです: {kind}")
    page_url = None
    if url:
        page_url = absolute_http_url(url)
        if page_url is None:
            raise UploadRefused(f"URL は http または https で指定してください: {url[:200]}")
    base = absolute_http_url(public_url)
    if base is None:
        raise UploadRefused(f"ライブラリの URL が http または https ではありません: {public_url[:200]}")
    stored = store_upload(data_dir, filename, content)
    options = {"type": str(stored.type), "sha256": stored.sha256, "kind": kind, "url": page_url,
               "public_url": base}
    now = utcnow()
    with store.session() as session:
        row = session.scalar(select(SourceRow).where(SourceRow.kind == SourceKind.UPLOAD.value,
                                                     SourceRow.location == str(stored.path)).limit(1))
        if row is None:
            row = SourceRow(kind=SourceKind.UPLOAD.value, location=str(stored.path), created_at=now, enabled=True)
            session.add(row)
        row.name = display_name(filename)
        row.options = options
        row.provenance = provenance
        row.organization = organization or None
        row.schedule = None  # an upload is read when it is uploaded, never on a schedule
        row.updated_at = now
        session.flush()
    return row
