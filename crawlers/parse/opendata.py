"""自治体標準オープンデータセット CSV → ``program`` (イベント一覧) and ``facility`` (施設の一覧) drafts.

What real municipal files do, and what this reads (see ``../shared/corpus/opendata/SOURCE.md``):

* UTF-8 with or without a BOM, and cp932 (decoded by ``decode_document``); CRLF or LF; quoted or not;
  quoted fields spanning lines.
* ``#`` metadata lines before the data (the old "#LINK" format: ``#attribution_name``, ``#license``, …),
  and a header row whose first cell is ``#property``.
* Header variants: the standard Japanese names, full-width brackets, the 2024 revised columns
  (全国地方公共団体コード, ID, 所在地_連結表記, …), English keys (``name``, ``telephoneNumber``), headers
  translated to English with spaces after the commas, an extra leading column, look-alike dashes.

A row that cannot become a valid record is reported with its row and line numbers; the other rows still
parse. Only a file that cannot be read as a dataset at all raises ``ParseError``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from crawlers.charset import CharsetSource, decode_document
from crawlers.parse.dates import at_time, parse_date, parse_time
from crawlers.parse.errors import ParseError
from crawlers.parse.text import BODY_MAX, LINE_MAX, PARAGRAPH_MAX, clip, one_line, tidy
from crawlers.parse.urls import absolute_http_url
from schemas import RecordValidationError, validate_record

TAG_MAX = 100  # the record schema's limit for one tag
# A row with no closing time ends with its last day; 23:59 reads as that, and sorts before the next day.
END_OF_DAY = timedelta(hours=23, minutes=59)


class Dataset(StrEnum):
    EVENT = "イベント一覧"
    PUBLIC_FACILITY = "公共施設一覧"
    AED = "AED設置箇所一覧"
    TOURISM = "観光施設一覧"
    PUBLIC_TOILET = "公衆トイレ一覧"
    LIBRARY = "図書館一覧"
    FLOOD_WAREHOUSE = "水防倉庫一覧"


FACILITY_TYPES = {
    Dataset.PUBLIC_FACILITY: "公共施設",
    Dataset.AED: "AED設置場所",
    Dataset.TOURISM: "観光施設",
    Dataset.PUBLIC_TOILET: "公衆トイレ",
    Dataset.LIBRARY: "図書館",
    Dataset.FLOOD_WAREHOUSE: "水防倉庫",
}


class UnknownDataset(ParseError):
    """The headers match none of the datasets we read (``parse_upload`` then tries a generic CSV)."""


@dataclass(frozen=True)
class RowError:
    row: int
    """The data row, counting from 1 after the header."""
    line: int
    """The line of the file where the row starts, counting every line from 1."""
    message: str

    def __str__(self) -> str:
        return f"{self.row} 件目（{self.line} 行目）: {self.message}"


@dataclass(frozen=True)
class OpenDataResult:
    dataset: Dataset
    kind: str
    """The record kind of the drafts: ``program`` or ``facility``."""
    drafts: list[dict]
    errors: list[RowError]
    encoding: str
    encoding_source: CharsetSource
    metadata: dict[str, str] = field(default_factory=dict)
    """The ``#key,value`` lines before the data, e.g. ``attribution_name`` and ``license``."""


def parse_opendata_csv(content: bytes, *, dataset: str | None = None, organizer: str | None = None) -> OpenDataResult:
    """Drafts and per-row errors of a CSV. ``organizer``: the organizer of events whose rows name none (an
    event schedule without an organizer column, e.g. a convention calendar); the pipeline passes the
    source's organization or name."""
    decoded = decode_document(content, None, "csv")
    records = _records(decoded.text)
    metadata, header, header_line = _header(records)
    columns = [_canonical_column(name) for name in header]
    chosen = _dataset(dataset) if dataset else _detect(columns, header)
    kind = "program" if chosen is Dataset.EVENT else "facility"
    organizer = (organizer or "").strip()
    _check_required(chosen, columns, metadata, has_default_organizer=bool(organizer))
    build = functools.partial(_program, organizer=organizer) if kind == "program" else _facility
    drafts: list[dict] = []
    errors: list[RowError] = []
    seen_ids: dict[str, int] = {}
    for number, (line, cells) in enumerate(_data_rows(records, header_line), start=1):
        try:
            draft = build(_Row.of(columns, cells, len(header)), chosen, metadata)
            _check_unique(draft, seen_ids, number)
            validate_record({**draft, "provenance": "government"})
        except (_RowProblem, RecordValidationError) as exc:
            errors.append(RowError(number, line, str(exc)))
            continue
        seen_ids[draft["external_id"]] = number
        drafts.append(draft)
    return OpenDataResult(chosen, kind, drafts, errors, decoded.encoding, decoded.source, metadata)


def csv_cell_for_export(value: str) -> str:
    """A cell safe to open in a spreadsheet: one starting with = + - @, tab or CR gets a leading apostrophe,
    so Excel and LibreOffice show it as text instead of running it as a formula (CSV injection, T16).
    Write the file with ``csv.QUOTE_ALL`` as well."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# Headers are compared in this form: NFKC (full-width brackets and letters), lowercase, no whitespace, and
# dash look-alikes after katakana read as the long vowel mark (都道府県コ―ド with U+2015 exists).
_WHITESPACE = re.compile(r"\s+")
_DASH_AFTER_KATAKANA = re.compile(r"(?<=[\u30a1-\u30fa])[\u2010-\u2015\u2212\uff0d]")
_TAG_SEPARATORS = re.compile(r"[;；]")

_ALIASES = {
    # 2024 revised standard columns.
    "全国地方公共団体コード": "都道府県コード又は市区町村コード",
    "id": "NO",
    "no": "NO",
    "#property": "NO",  # the "#LINK" format's row number column
    "所在地_連結表記": "住所",
    "建物名等(方書)": "方書",
    "所在地_都道府県": "都道府県名",
    "所在地_市区町村": "市区町村名",
    "利用開始時間": "開始時間",
    "利用終了時間": "終了時間",
    "利用可能時間特記事項": "利用可能日時特記事項",
    "対象者": "対象",
    "コンテンツurl": "コンテンツURL",
    "施設名": "名称",
    "施設名称": "名称",
    "水防倉庫名": "名称",
    "水防倉庫名カナ": "名称_カナ",
    # Event schedules outside the standard (e.g. コンベンション予定).
    "コンベンション名": "イベント名",
    "開催日": "開始日",
    "開催終了日": "終了日",
    "開催場所": "場所名称",
    # "#property" English keys (Takamatsu).
    "name": "名称",
    "address": "住所",
    "installationposition": "設置位置",
    "location": "位置",
    "telephonenumber": "電話番号",
    "availabledate": "利用可能曜日",
    "starttime": "開始時間",
    "endtime": "終了時間",
    "availabledatenote": "利用可能日時特記事項",
    "equipmentforchildren": "小児対応設備の有無",
    "referenceobject": "URL",
    "note": "備考",
    "service": "種別",
    "capacity": "定員",
    "latitude": "緯度",
    "longitude": "経度",
    # イベント一覧 with the header translated to English (Hamamatsu); 方書 came out as "Directions".
    "municipalityname": "市区町村名",
    "eventname": "イベント名",
    "eventname_kana": "イベント名_カナ",
    "eventname_english": "イベント名_英語",
    "startdate": "開始日",
    "enddate": "終了日",
    "remarks": "備考",
    "eventdetails": "説明",
    "fee(basic)": "料金(基本)",
    "fee(detailed)": "料金(詳細)",
    "contactname": "連絡先名称",
    "contactphonenumber": "連絡先電話番号",
    "contactextensionnumber": "連絡先内線番号",
    "organizer": "主催者",
    "venuename": "場所名称",
    "directions": "方書",
    "accessmethod": "アクセス方法",
    "parkinginformation": "駐車場情報",
    "applicationenddate": "参加申込終了日",
    "applicationendtime": "参加申込終了時間",
    "applicationmethod": "参加申込方法",
    "url": "URL",
    "category": "カテゴリー",
    "district": "地区",
    "publicationdate": "掲載開始日",
    "updatedate": "更新日",
}
_DATASET_NAMES = {
    **{member.name.lower(): member for member in Dataset},
    **{member.value.lower(): member for member in Dataset},
    **{value.lower(): member for member, value in FACILITY_TYPES.items()},
    "event": Dataset.EVENT,
    "イベント": Dataset.EVENT,
}

# A date announced only roughly: a month, a part of a month, "頃", "予定", "未定" (convention calendars).
_VAGUE_DATE = re.compile(r"頃|ごろ|予定|未定|調整中|上旬|中旬|下旬|^\s*\d{4}\s*年\s*\d{1,2}\s*月\s*$")
_ORGANIZER_COLUMNS = ("主催者", "市区町村名", "地方公共団体名", "団体名")
_TAG_COLUMNS = (
    "カテゴリー", "イベントジャンル", "キーワード", "タグ", "区分1", "区分2", "タグ1", "タグ2", "タグ3",
)
# (column, label): further columns that go into the body as "label: value" lines.
_EVENT_EXTRAS = (
    ("開始日時特記事項", "日時"), ("定員", "定員"), ("参加申込方法", "申込方法"),
    ("アクセス方法", "アクセス"), ("駐車場情報", "駐車場"), ("備考", "備考"),
)
_FACILITY_EXTRAS = (
    ("設置位置", "設置位置"), ("小児対応設備の有無", "小児対応設備"), ("バリアフリー情報", "バリアフリー"),
    ("車椅子使用者用トイレ有無", "車椅子使用者用トイレ"), ("乳幼児用設備設置トイレ有無", "乳幼児用設備"),
    ("オストメイト設置トイレ有無", "オストメイト対応"), ("料金(基本)", "料金"),
    ("料金(詳細)", "料金（詳細）"), ("アクセス方法", "アクセス"), ("駐車場情報", "駐車場"), ("定員", "定員"),
    ("団体名", "担当"), ("備考", "備考"),
)


class _RowProblem(ValueError):
    """One row's problem, reported in ``OpenDataResult.errors``."""


def _records(text: str) -> list[tuple[int, list[str] | csv.Error]]:
    """Each CSV record with the line it starts on; a malformed record is kept as its error."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[tuple[int, list[str] | csv.Error]] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return records
        except csv.Error as exc:  # e.g. a field over the csv module's size limit; the next record still reads
            records.append((line, exc))
            continue
        if any(cell.strip() for cell in cells):
            records.append((line, cells))


def _header(records: list[tuple[int, list[str] | csv.Error]]) -> tuple[dict[str, str], list[str], int]:
    """The ``#key,value`` metadata before the header, the header and its line."""
    metadata: dict[str, str] = {}
    for line, cells in records:
        if isinstance(cells, csv.Error):
            raise ParseError(f"{line} 行目: 見出しの行を CSV として読めません（{cells}）")
        first = cells[0].strip()
        if first.startswith("#") and _canonical_column(first) != "NO":
            if len(cells) > 1 and cells[1].strip():
                metadata.setdefault(first[1:], cells[1].strip())
            continue
        return metadata, cells, line
    raise ParseError("CSV に見出しの行がありません")


def _data_rows(records: list[tuple[int, list[str] | csv.Error]], header_line: int
               ) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """Records after the header, less the ``#`` metadata lines that the "#LINK" format puts right after it."""
    in_preamble = True
    for line, cells in records:
        if line <= header_line:
            continue
        if in_preamble and isinstance(cells, list) and cells[0].strip().startswith("#"):
            continue
        in_preamble = False
        yield line, cells


def _canonical_column(name: str) -> str:
    key = _DASH_AFTER_KATAKANA.sub("ー", _WHITESPACE.sub("", unicodedata.normalize("NFKC", name)).lower())
    return _ALIASES.get(key, key)


def _dataset(name: str) -> Dataset:
    key = unicodedata.normalize("NFKC", name).strip().lower()
    if key in _DATASET_NAMES:
        return _DATASET_NAMES[key]
    choices = "、".join(member.value for member in Dataset)
    raise ParseError(f"データセットの種類「{name}」はわかりません（{choices} のいずれか）")


def _detect(columns: list[str], header: list[str]) -> Dataset:
    present = set(columns)
    if "イベント名" in present:
        return Dataset.EVENT
    if present & {"男性トイレ総数", "女性トイレ総数", "男女共用トイレ総数", "バリアフリートイレ数"}:
        return Dataset.PUBLIC_TOILET
    if any("水防倉庫" in unicodedata.normalize("NFKC", name) for name in header):
        return Dataset.FLOOD_WAREHOUSE
    if present & {"設置位置", "小児対応設備の有無"}:
        return Dataset.AED
    if present & {"説明_英語", "料金(基本)"}:
        return Dataset.TOURISM
    if "名称" in present:
        return Dataset.PUBLIC_FACILITY
    shown = "、".join(name.strip() for name in header[:8])
    raise UnknownDataset(f"見出し（{shown} …）から自治体標準オープンデータセットの種類を判別できません")


def _check_required(dataset: Dataset, columns: list[str], metadata: dict[str, str], *,
                    has_default_organizer: bool) -> None:
    present = set(columns)
    title = "イベント名" if dataset is Dataset.EVENT else "名称"
    if title not in present:
        raise ParseError(f"{dataset.value}に「{title}」の列がありません")
    has_organizer = present & set(_ORGANIZER_COLUMNS) or "attribution_name" in metadata or has_default_organizer
    if dataset is Dataset.EVENT and not has_organizer:
        columns = "・".join(_ORGANIZER_COLUMNS)
        raise ParseError(f"{dataset.value}に主催者の列（{columns}のいずれか）がありません"
                         "（取得元に組織名を指定すると、それを主催者にします）")


@dataclass(frozen=True)
class _Row:
    values: dict[str, list[str]]

    @classmethod
    def of(cls, columns: list[str], cells: list[str] | csv.Error, width: int) -> _Row:
        if isinstance(cells, csv.Error):
            raise _RowProblem(f"CSV の形式が正しくありません（{cells}）")
        if any(cell.strip() for cell in cells[width:]):
            raise _RowProblem(f"見出し（{width} 列）より多い {len(cells)} 列があります")
        values: dict[str, list[str]] = {}
        for column, cell in zip(columns, cells, strict=False):
            values.setdefault(column, []).append(cell.strip())
        return cls(values)

    def get(self, *columns: str) -> str:
        """The first non-empty value among the columns (a column may appear more than once)."""
        return next((value for column in columns for value in self.values.get(column, ()) if value), "")

    def all(self, *columns: str) -> list[str]:
        return [value for column in columns for value in self.values.get(column, ()) if value]


def _program(row: _Row, dataset: Dataset, metadata: dict[str, str], *, organizer: str = "") -> dict:
    title = row.get("イベント名")
    if not title:
        raise _RowProblem("イベント名が空です")
    organization = _organization(row, metadata)
    organizer = row.get("主催者") or organization or row.get("団体名") or organizer
    if not organizer:
        raise _RowProblem("主催者（または市区町村名・団体名）が空です")
    start_day, vague_start = _day_or_vague(row, "開始日")
    end_day, vague_end = _day_or_vague(row, "終了日")
    start_time, end_time = _time(row, "開始時間"), _time(row, "終了時間")
    if start_time == end_time == timedelta():
        start_time = end_time = None  # 0:00–0:00 is what a spreadsheet writes for empty time cells
    starts_at = at_time(start_day, start_time) if start_day else None
    if end_day:
        ends_at = _closing(end_day, end_time)
    else:
        ends_at = at_time(start_day, end_time) if start_day and end_time is not None else None
    deadline_day = _day(row, "参加申込終了日")
    draft = {
        "kind": "program",
        "title": _line(title),
        "body": _body(row, ("概要", "説明"), _EVENT_EXTRAS, _vague_dates(vague_start, vague_end)),
        "organizer": _line(organizer),
        "starts_at": starts_at,
        "ends_at": ends_at,
        "place": _line(row.get("場所名称")),
        "address": _line(_joined(row.get("住所"), row.get("方書"))),
        "audience": _line(row.get("対象")),
        "fee": _line(_joined(row.get("料金(基本)"), row.get("料金(詳細)"))),
        "contact": _contact(row),
        "application_deadline": deadline_day and _closing(deadline_day, _time(row, "参加申込終了時間")),
        "url": _url(row),
        "organization": _line(organization),
        "region": _line(_region(row, metadata)),
        "tags": _tags(row),
        "published_at": _optional_day(row, "掲載開始日"),
        "updated_at": _optional_day(row, "更新日"),
    }
    draft["external_id"] = _external_id(row, dataset, organization, (title, str(starts_at), draft["place"]))
    return _finished(draft)


def _facility(row: _Row, dataset: Dataset, metadata: dict[str, str]) -> dict:
    title = row.get("名称")
    if not title:
        raise _RowProblem("名称が空です")
    latitude, longitude = _coordinates(row)
    organization = _organization(row, metadata)
    address = _joined(row.get("住所"), row.get("方書"))
    draft = {
        "kind": "facility",
        "title": _line(title),
        "body": _body(row, ("説明",), _FACILITY_EXTRAS),
        "facility_type": _line(row.get("種別") or FACILITY_TYPES[dataset]),
        "address": _line(address),
        "phone": _line(
            _phone(row, "電話番号", "内線番号") or _phone(row, "連絡先電話番号", "連絡先内線番号")
        ),
        "opening_hours": _line(_opening_hours(row)),
        "latitude": latitude,
        "longitude": longitude,
        "url": _url(row),
        "organization": _line(organization),
        "region": _line(_region(row, metadata)),
        "tags": _tags(row),
    }
    draft["external_id"] = _external_id(row, dataset, organization, (title, address))
    return _finished(draft)


def _finished(draft: dict) -> dict:
    """Empty fields dropped, datetimes as ISO 8601 strings."""
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in draft.items()
        if value not in (None, "", [])
    }


def _day_or_vague(row: _Row, column: str) -> tuple[date | None, str | None]:
    """A date, or the text of a date announced only roughly ("2026年6月頃開催予定", "10月下旬"): the event
    is kept, undated, with that text in its body. Any other unreadable date is the row's error."""
    try:
        return _day(row, column), None
    except _RowProblem:
        value = row.get(column)
        if _VAGUE_DATE.search(value):
            return None, value
        raise


def _vague_dates(start: str | None, end: str | None) -> tuple[str, ...]:
    if start and end:
        return (f"日時: {start}〜{end}",)
    return (f"日時: {start or end}",) if start or end else ()


def _day(row: _Row, column: str) -> date | None:
    value = row.get(column)
    if not value:
        return None
    found = parse_date(value)
    if found is None:
        raise _RowProblem(f"{column}「{value}」を日付として読めません")
    return found


def _closing(day: date, time: timedelta | None) -> datetime:
    """When something that ends on ``day`` ends: at ``time``, else at the end of the day."""
    return at_time(day, time if time is not None else END_OF_DAY)


def _optional_day(row: _Row, column: str) -> datetime | None:
    day = _day(row, column)
    return at_time(day) if day else None


def _time(row: _Row, column: str) -> timedelta | None:
    value = row.get(column)
    if not value:
        return None
    found = parse_time(value)
    if found is None:
        raise _RowProblem(f"{column}「{value}」を時刻として読めません")
    return found


def _coordinates(row: _Row) -> tuple[float | None, float | None]:
    latitude, longitude = row.get("緯度"), row.get("経度")
    if not (latitude or longitude) and (pair := row.get("位置")):
        latitude, _, longitude = pair.partition(",")
    if not (latitude or longitude):
        return None, None
    if not (latitude and longitude):
        raise _RowProblem("緯度と経度の片方しかありません")
    return _degrees(latitude, "緯度", 90), _degrees(longitude, "経度", 180)


def _degrees(value: str, name: str, limit: int) -> float:
    try:
        degrees = float(unicodedata.normalize("NFKC", value).strip())
    except ValueError:
        raise _RowProblem(f"{name}「{value}」を数値として読めません") from None
    if not math.isfinite(degrees) or abs(degrees) > limit:
        raise _RowProblem(f"{name} {value} が範囲外です（-{limit}〜{limit}）")
    return degrees


def _organization(row: _Row, metadata: dict[str, str]) -> str:
    return row.get("市区町村名", "地方公共団体名") or metadata.get("attribution_name", "")


def _region(row: _Row, metadata: dict[str, str]) -> str:
    prefecture, municipality = row.get("都道府県名"), row.get("市区町村名")
    if municipality:
        already_prefixed = not prefecture or municipality.startswith(prefecture)
        return municipality if already_prefixed else prefecture + municipality
    return row.get("地方公共団体名") or prefecture or metadata.get("attribution_name", "")


def _external_id(row: _Row, dataset: Dataset, organization: str, identity: tuple[str | None, ...]) -> str:
    """The local government code (or name) and the row's NO/ID, stable across re-imports; rows without a
    NO are keyed by a hash of what identifies them."""
    number = row.get("NO")
    if not number:
        digest = hashlib.sha256("\x00".join([dataset.name, *map(str, identity)]).encode()).hexdigest()
        number = f"{dataset.name.lower()}-{digest[:16]}"
    scope = row.get("都道府県コード又は市区町村コード") or organization
    return clip(f"{scope}:{number}" if scope else number, LINE_MAX)


def _check_unique(draft: dict, seen: dict[str, int], number: int) -> None:
    if (first := seen.get(draft["external_id"])) is not None:
        raise _RowProblem(f"ID「{draft['external_id']}」が {first} 件目と重複しています")


def _body(row: _Row, main: tuple[str, ...], extras: tuple[tuple[str, str], ...], more: tuple[str, ...] = ()) -> str:
    parts = list(dict.fromkeys(row.all(*main)))
    parts += [f"{label}: {value}" for column, label in extras if (value := row.get(column))]
    parts += more
    return clip(tidy("\n".join(parts)), BODY_MAX)


def _contact(row: _Row) -> str | None:
    text = tidy(_joined(row.get("連絡先名称"), _phone(row, "連絡先電話番号", "連絡先内線番号")))
    return clip(text, PARAGRAPH_MAX) if text else None


def _phone(row: _Row, number_column: str, extension_column: str) -> str:
    number, extension = row.get(number_column), row.get(extension_column)
    return _joined(number, f"（内線 {extension}）" if number and extension else "")


def _opening_hours(row: _Row) -> str:
    start, end = row.get("開始時間"), row.get("終了時間")
    hours = f"{start}～{end}" if start or end else ""
    closed = row.get("休業日")
    return _joined(row.get("利用可能曜日"), hours, row.get("利用可能日時特記事項"),
                   f"休業日: {closed}" if closed else "")


def _url(row: _Row) -> str | None:
    return next((url for value in row.all("URL", "コンテンツURL") if (url := absolute_http_url(value))), None)


def _tags(row: _Row) -> list[str]:
    tags = (tag.strip() for value in row.all(*_TAG_COLUMNS) for tag in _TAG_SEPARATORS.split(value))
    return list(dict.fromkeys(tag for tag in tags if tag and len(tag) <= TAG_MAX))


def _joined(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _line(text: str | None) -> str | None:
    """A one-line field: a multi-line cell's lines joined by spaces, cut to the schema's limit."""
    line = one_line(text) if text else ""
    return clip(line, LINE_MAX) if line else None

