"""Record kinds: one pydantic model per ``kind`` and the ``Record`` union that dispatches on it.

Validation is lenient about the form of input (full-width digits, dates without a time, blank optional
fields) and strict about content (unknown fields, URL schemes, check digits, categories). What it keeps is
canonical, so ``validate_record(record_to_dict(record)) == record``.
"""

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from .allergens import ALLERGENS
from .errors import FieldError, RecordValidationError, field_errors
from .taxonomy import all_category_ids, is_category

# Japan has had no daylight saving time since 1951, so a fixed offset is exactly Asia/Tokyo.
JST = timezone(timedelta(hours=9), "JST")

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
_ID_RE = re.compile(ID_PATTERN)

Provenance = Literal["maker", "government", "npo", "coop", "shop", "citizen"]
Status = Literal["published", "pending", "retracted", "expired"]
Severity = Literal["critical", "high", "medium", "low"]


def _nfkc(value: Any) -> Any:
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


def _blank_to_none(value: Any) -> Any:
    # Forms and CSV files send "" for an empty optional field.
    return None if isinstance(value, str) and not value.strip() else value


T = TypeVar("T")


def _unique(values: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(values))


def _nonblank_unique(values: list[str]) -> list[str]:
    return _unique(value for value in values if value)


def _check_record_id(value: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise PydanticCustomError(
            "record_id", "ID は英数字で始め、英数字と . _ : - だけを使って 128 文字以内にしてください"
        )
    return value


def _check_url(value: str) -> str:
    # Checked first: urlsplit silently drops tabs and newlines.
    if any(char.isspace() or unicodedata.category(char) == "Cc" for char in value):
        raise PydanticCustomError("url_whitespace", "URL に空白や制御文字は使えません")
    try:
        parts = urlsplit(value)
        parts.port  # raises ValueError for a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("http_url", "http または https の URL を入力してください")
    return parts.scheme.lower() + value[len(parts.scheme) :]


def _is_gtin_shaped(code: str) -> bool:
    return len(code) in (8, 13) and code.isascii() and code.isdigit()


def is_valid_gtin(code: str) -> bool:
    """True for a GTIN-8 or GTIN-13 (JAN) code, in ASCII digits, whose last digit is the right check digit."""
    if not _is_gtin_shaped(code):
        return False
    # Weights alternate 3, 1, 3, … from the digit next to the check digit.
    total = sum(int(digit) * (3 if i % 2 == 0 else 1) for i, digit in enumerate(reversed(code[:-1])))
    return (10 - total % 10) % 10 == int(code[-1])


def _check_gtin(value: str) -> str:
    if not _is_gtin_shaped(value):
        raise PydanticCustomError("gtin_format", "JAN コードは 8 桁または 13 桁の数字で入力してください")
    if not is_valid_gtin(value):
        raise PydanticCustomError("gtin_check_digit", "JAN コードのチェックディジットが正しくありません")
    return value


def _check_category(value: str) -> str:
    if not is_category(value):
        raise PydanticCustomError("unknown_category", "不明なカテゴリです: {category}", {"category": value})
    return value


def _check_allergen(value: str) -> str:
    if value not in ALLERGENS:
        raise PydanticCustomError(
            "unknown_allergen",
            "アレルゲンは特定原材料など 28 品目の名称で入力してください: {allergen}",
            {"allergen": value},
        )
    return value


def _as_jst_if_naive(value: datetime) -> datetime:
    return value.replace(tzinfo=JST) if value.tzinfo is None else value


def _not_before_start(ends_at: datetime | None, info: ValidationInfo) -> datetime | None:
    starts_at = info.data.get("starts_at")  # absent when starts_at itself was invalid
    if ends_at is not None and starts_at is not None and ends_at < starts_at:
        raise PydanticCustomError("ends_before_start", "終了日時は開始日時と同じかそれより後にしてください")
    return ends_at


UniqueList = Annotated[list[T], AfterValidator(_unique)]

RecordId = Annotated[
    str, AfterValidator(_check_record_id), WithJsonSchema({"type": "string", "pattern": ID_PATTERN})
]
OptionalRecordId = Annotated[RecordId | None, BeforeValidator(_blank_to_none)]

Line = Annotated[str, StringConstraints(min_length=1, max_length=500)]
OptionalLine = Annotated[Line | None, BeforeValidator(_blank_to_none)]
Paragraph = Annotated[str, StringConstraints(min_length=1, max_length=5000)]
OptionalParagraph = Annotated[Paragraph | None, BeforeValidator(_blank_to_none)]

# Model and lot numbers are often typed in full width; NFKC makes them comparable. The constraints come first
# so that they apply to the string itself, after NFKC.
Code = Annotated[str, StringConstraints(min_length=1, max_length=100), BeforeValidator(_nfkc)]
Tag = Annotated[str, StringConstraints(max_length=100), BeforeValidator(_nfkc)]

Url = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(_check_url),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https?://", "maxLength": 2048}),
]
OptionalUrl = Annotated[Url | None, BeforeValidator(_blank_to_none)]

Gtin = Annotated[
    str,
    BeforeValidator(_nfkc),
    AfterValidator(_check_gtin),
    WithJsonSchema({"type": "string", "pattern": "^(?:[0-9]{8}|[0-9]{13})$"}),
]
OptionalGtin = Annotated[Gtin | None, BeforeValidator(_blank_to_none)]

CategoryId = Annotated[
    str, AfterValidator(_check_category), WithJsonSchema({"type": "string", "enum": list(all_category_ids())})
]
Allergen = Annotated[
    str,
    BeforeValidator(_nfkc),
    AfterValidator(_check_allergen),
    WithJsonSchema({"type": "string", "enum": list(ALLERGENS)}),
]

# Naive input (including a plain date, read as midnight) is local time in a Japanese town.
JstDatetime = Annotated[datetime, AfterValidator(_as_jst_if_naive)]
EndsAt = Annotated[JstDatetime | None, AfterValidator(_not_before_start)]

Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class RecordBase(BaseModel):
    """Fields every kind has. Records are instances of the subclasses in ``KIND_MODELS``."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        allow_inf_nan=False,
        validate_assignment=True,
        use_attribute_docstrings=True,
    )

    id: OptionalRecordId = None
    """Stable record id; None asks the indexer to assign one."""
    kind: str
    title: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    body: Annotated[str, StringConstraints(max_length=200_000)] = ""
    url: OptionalUrl = None
    source: OptionalLine = None
    """The source that brought the record, e.g. ``demo`` or ``crawl:3``."""
    external_id: OptionalLine = None
    """The record's id inside its source."""
    organization: OptionalLine = None
    region: OptionalLine = None
    categories: UniqueList[CategoryId] = []
    """Category ids from the taxonomy."""
    tags: Annotated[list[Tag], AfterValidator(_nonblank_unique)] = []
    published_at: JstDatetime | None = None
    updated_at: JstDatetime | None = None
    verified_at: JstDatetime | None = None
    """When someone last confirmed that the content is still right."""
    provenance: Provenance
    """Who stands behind the content."""
    status: Status = "published"


class NoticeRecord(RecordBase):
    """A maker's notice or product recall (お知らせ・リコール)."""

    kind: Literal["notice"]
    maker: Line
    product: Line
    jan_codes: UniqueList[Gtin] = []
    model_numbers: UniqueList[Code] = []
    lot_numbers: UniqueList[Code] = []
    hazard: Paragraph
    """What is wrong and what can happen."""
    action: Paragraph
    """What consumers should do."""
    severity: Severity = "medium"
    urgent: bool = False
    valid_until: JstDatetime | None = None
    contact: OptionalParagraph = None
    reported_by: Annotated[list[Line], AfterValidator(_nonblank_unique)] = []
    """Shops that reported this notice (also reported by): the same recall from several shops is one notice."""


class ProductRecord(RecordBase):
    """A co-op product (商品)."""

    kind: Literal["product"]
    maker: Line
    jan_code: OptionalGtin = None
    allergens: UniqueList[Allergen] = []
    price_yen: Annotated[int, Field(ge=0)] | None = None


class ProgramRecord(RecordBase):
    """An NPO or government program or event (催し・制度)."""

    kind: Literal["program"]
    organizer: Line
    starts_at: JstDatetime | None = None
    ends_at: EndsAt = None
    place: OptionalLine = None
    address: OptionalLine = None
    audience: OptionalLine = None
    fee: OptionalLine = None
    contact: OptionalParagraph = None
    application_deadline: JstDatetime | None = None


class FacilityRecord(RecordBase):
    """A public or community facility (施設)."""

    kind: Literal["facility"]
    facility_type: OptionalLine = None
    address: OptionalLine = None
    phone: OptionalLine = None
    opening_hours: OptionalLine = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class ContributionRecord(RecordBase):
    """A citizen's record (市民投稿), possibly about another record."""

    kind: Literal["contribution"]
    provenance: Literal["citizen"]
    about_record_id: OptionalRecordId = None


class ShopRecord(RecordBase):
    """A shop (店舗), possibly taking part in the local points scheme."""

    kind: Literal["shop"]
    address: OptionalLine = None
    phone: OptionalLine = None
    opening_hours: OptionalLine = None
    shop_code: OptionalLine = None
    accepts_points: bool = False


class CampaignRecord(RecordBase):
    """A points or sales campaign (キャンペーン)."""

    kind: Literal["campaign"]
    organizer: OptionalLine = None
    starts_at: JstDatetime | None = None
    ends_at: EndsAt = None
    points_rule: OptionalParagraph = None
    shop_ids: UniqueList[RecordId] = []
    """Ids of the participating shop records."""


class PageRecord(RecordBase):
    """A crawled web page (ウェブページ)."""

    kind: Literal["page"]
    url: Url
    site: OptionalLine = None
    fetched_at: JstDatetime | None = None


class FaqRecord(RecordBase):
    """A frequently asked question (よくある質問): the title asks, the body answers."""

    kind: Literal["faq"]


Record = Annotated[
    NoticeRecord
    | ProductRecord
    | ProgramRecord
    | FacilityRecord
    | ContributionRecord
    | ShopRecord
    | CampaignRecord
    | PageRecord
    | FaqRecord,
    Field(discriminator="kind"),
]
KIND_MODELS: dict[str, type[RecordBase]] = {
    get_args(model.model_fields["kind"].annotation)[0]: model for model in get_args(get_args(Record)[0])
}
KINDS: tuple[str, ...] = tuple(KIND_MODELS)

KIND_LABELS: dict[str, str] = {
    "notice": "お知らせ・リコール",
    "product": "商品",
    "program": "催し・制度",
    "facility": "施設",
    "contribution": "市民投稿",
    "shop": "店舗",
    "campaign": "キャンペーン",
    "page": "ウェブページ",
    "faq": "よくある質問",
}
PROVENANCE_LABELS: dict[str, str] = {
    "maker": "メーカー公式",
    "government": "行政",
    "npo": "NPO確認済み",
    "coop": "生協",
    "shop": "店舗",
    "citizen": "市民投稿",
}
STATUS_LABELS: dict[str, str] = {
    "published": "公開中",
    "pending": "確認待ち",
    "retracted": "取り下げ",
    "expired": "期限切れ",
}
SEVERITY_LABELS: dict[str, str] = {"critical": "重大", "high": "高", "medium": "中", "low": "低"}

# Kind-specific fields to analyse and search besides title and body (str or list[str] values).
SEARCHABLE_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "notice": ("maker", "product", "hazard", "action", "model_numbers", "lot_numbers", "jan_codes"),
    "product": ("maker", "jan_code", "allergens"),
    "program": ("organizer", "place", "address", "audience"),
    "facility": ("facility_type", "address"),
    "contribution": (),
    "shop": ("address",),
    "campaign": ("organizer", "points_rule"),
    "page": ("site",),
    "faq": (),
}


def validate_record(data: dict[str, Any]) -> RecordBase:
    """Validate a record of any kind; ``RecordValidationError`` lists every problem in Japanese."""
    if not isinstance(data, dict):
        raise RecordValidationError(
            [FieldError("", "レコードはオブジェクト（キーと値の組）で指定してください")]
        )
    kind = data.get("kind")
    if kind is None:
        raise RecordValidationError([FieldError("kind", "必須項目です")])
    model = KIND_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        message = f"不明な種別です: {kind}（{', '.join(KINDS)} のいずれか）"
        raise RecordValidationError([FieldError("kind", message)])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecordValidationError(field_errors(exc)) from exc


def record_to_dict(record: RecordBase) -> dict[str, Any]:
    """A JSON-ready snapshot with every field (None included) and ISO 8601 datetimes with their offset."""
    return record.model_dump(mode="json")
